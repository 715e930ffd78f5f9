"""One Pro Mode session: iterations of candidates → bracket → synthesis, every step an event.

Iteration 1 generates `candidates` answers in parallel. Each later iteration keeps the current
best answer as an entrant (the incumbent) and adds `candidates - 1` improvements of it, each
from an agent that first critiques it; the bracket then decides whether an improvement beats
it. The finalists are synthesised into the new best answer. `best` always holds the best answer
so far (the first finished candidate, then the champion, then the synthesis), which is what a
session returns when its time runs out. In a code or QA session the candidates and the synthesis
are agent-loop runs on branches of their own (`code_runs`): their answers are reports (summary,
diff, test output) and every entrant also names its branch and commit.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field, replace
from typing import Any

from genway.agents.calls import JobRef, UsageTally, llm_failure
from genway.agents.recording import EventRecorder
from genway.engines.llm.providers import LLMError, ToolsUnsupported
from genway.engines.llm.router import ModelRouter
from genway.jobs.models import Job
from genway.jobs.states import JobStatus
from genway.promode.code_runs import CodeRunner, instance_answer
from genway.promode.instances import Instances
from genway.promode.schemas import InstanceInput, SessionInput
from genway.promode.steps import Answer, judge, synthesize
from genway.promode.tournament import (
    Bracket,
    Entrant,
    Match,
    Verdict,
    judge_reasons,
    run_bracket,
)
from genway.worker.context import JobCancelled, JobContext, JobFailed

INCUMBENT = "incumbent"
PREVIEW_CHARS = 300


@dataclass
class Best:
    entrant: Entrant
    source: str
    iteration: int


@dataclass
class SessionRun:
    job: Job
    ctx: JobContext
    spec: SessionInput
    router: ModelRouter
    recorder: EventRecorder
    instances: Instances
    project: str | None
    coder: CodeRunner | None = None  # code and QA sessions: candidates are code runs
    tally: UsageTally = field(default_factory=UsageTally)
    best: Best | None = None
    reasons: list[str] = field(default_factory=list)
    completed: int = 0
    cancelled: int = 0
    timed_out: bool = False

    @property
    def ref(self) -> JobRef:
        return JobRef(self.job.id, self.job.org_id, self.job.user_id)

    def emit(self, name: str, data: dict[str, Any]) -> None:
        self.recorder.output(self.job.id, self.job.org_id, name, data)

    def progress(self, fraction: float, message: str) -> None:
        # Batched: the job's progress column must not hold up the next model call.
        self.recorder.progress(self.job.id, self.job.org_id, fraction, message)

    async def run(self) -> None:
        """Every iteration, until `max_iterations`; the caller bounds it in time."""
        for iteration in range(1, self.spec.max_iterations + 1):
            await self.iteration(iteration)
            self.completed = iteration

    async def iteration(self, number: int) -> None:
        mode = "generate" if self.best is None else "improve"
        base = (number - 1) / self.spec.max_iterations
        step = 1 / (3 * self.spec.max_iterations)
        self.progress(base, f"iteration {number}: {mode}")
        entrants = await self.candidates(number, mode)
        self.progress(base + step, f"iteration {number}: tournament")
        bracket = await self.tournament(number, entrants)
        self.progress(base + 2 * step, f"iteration {number}: synthesis")
        await self.synthesis(number, entrants, bracket)
        self.emit("iteration_completed", {"iteration": number, "usage": self.tally.as_dict()})

    def instance_inputs(self, number: int, mode: str) -> list[InstanceInput]:
        count = self.spec.candidates - (1 if mode == "improve" else 0)
        agents = self.spec.agents
        return [
            InstanceInput(
                session_id=self.job.id,
                iteration=number,
                index=index,
                agent=agents[index % len(agents)],
                mode="improve" if mode == "improve" else "generate",
                task=self.spec.task,
                prompt=self.spec.prompt,
                model=self.spec.model,
                project_id=self.spec.project_id,
                incumbent=self.best.entrant.text if self.best else None,
                notes=self.reasons[:10],
                base_commit=self.coder.base if self.coder else None,
                incumbent_commit=self.best.entrant.commit if self.best else None,
            )
            for index in range(count)
        ]

    async def candidates(self, number: int, mode: str) -> list[Entrant]:
        incumbent = self.best.entrant if self.best is not None else None
        self.cancelled = 0
        inputs = self.instance_inputs(number, mode)
        children = await self.instances.spawn(inputs)
        listed = [
            {"key": str(c.id), "job_id": c.id, "index": s.index, "agent": s.agent}
            for c, s in zip(children, inputs, strict=True)
        ]
        self.emit("iteration_started", {"iteration": number, "mode": mode, "instances": listed})
        answers = await asyncio.gather(
            *(self.instance(number, c, s) for c, s in zip(children, inputs, strict=True))
        )
        entrants = [entrant for entrant in answers if entrant is not None]
        if incumbent is not None:
            entrants.insert(0, replace(incumbent, key=INCUMBENT))
        if not entrants:
            if self.ctx.cancelled.is_set() or self.cancelled >= len(children):
                # Cancelling a session cancels its instances in the same transaction, so they
                # may stop before the worker has told the session itself.
                raise JobCancelled
            raise JobFailed("no_candidates", f"No agent instance answered in iteration {number}")
        return entrants

    async def instance(self, number: int, child: Job, spec: InstanceInput) -> Entrant | None:
        """Run one instance; its job ends succeeded, failed or (if a client asked) cancelled."""
        own = UsageTally()
        ref = JobRef(child.id, child.org_id, child.user_id)
        work = instance_answer(self.router, self.recorder, ref, own, spec, self.project, self.coder)
        stop = self.instances.cancel_events[child.id]
        event = {"iteration": number, "key": str(child.id), "job_id": child.id, "agent": spec.agent}
        try:
            answer = await _unless(stop, work)
        except (LLMError, JobFailed) as error:
            failed = llm_failure(error) if isinstance(error, LLMError) else error
            failure = failed.as_error()
            self.instances.finish(child, JobStatus.FAILED, error=failure)
            self.emit("candidate", {**event, "status": JobStatus.FAILED, "error": failure})
            return None
        finally:
            self.tally.merge(own)
        if answer is None:
            self.cancelled += 1
            self.instances.finish(child, JobStatus.CANCELLED)
            self.emit("candidate", {**event, "status": JobStatus.CANCELLED})
            return None
        result = {"text": answer.text, "critique": answer.critique, "model": answer.model}
        if self.coder is not None:
            result |= {"branch": answer.branch, "commit": answer.commit}
        self.instances.finish(child, JobStatus.SUCCEEDED, result={**result, "usage": own.as_dict()})
        self.emit("candidate", {**event, "status": JobStatus.SUCCEEDED, **result})
        entrant = Entrant(str(child.id), answer.text, answer.branch, answer.commit)
        if self.best is None:
            self.best = Best(entrant, "candidate", number)
        return entrant

    async def tournament(self, number: int, entrants: list[Entrant]) -> Bracket:
        def on_match(match: Match) -> None:
            self.emit("match", {"iteration": number, **match.as_dict()})

        async def judged(a: Entrant, b: Entrant) -> Verdict:
            return await judge(
                self.router,
                self.recorder,
                self.ref,
                self.tally,
                self.spec.prompt,
                a,
                b,
                code=self.coder is not None,
            )

        bracket = await run_bracket(entrants, judged, on_match)
        self.emit("bracket", {"iteration": number, **bracket.as_dict()})
        by_key = {entrant.key: entrant for entrant in entrants}
        self.best = Best(by_key[bracket.champion], "champion", number)
        return bracket

    async def synthesis(self, number: int, entrants: list[Entrant], bracket: Bracket) -> None:
        by_key = {entrant.key: entrant for entrant in entrants}
        finalists = [by_key[key] for key in bracket.finalists]
        reasons = judge_reasons(bracket)
        answer = await self.merge(finalists, reasons) if len(finalists) > 1 else None
        if answer is not None:
            entrant = Entrant(f"synthesis-{number}", answer.text, answer.branch, answer.commit)
            self.best = Best(entrant, "synthesis", number)
            data = {
                "iteration": number,
                "from": bracket.finalists,
                "model": answer.model,
                "text": answer.text,
            }
            if self.coder is not None:
                data |= {"branch": answer.branch, "commit": answer.commit}
            self.emit("synthesis", data)
        self.reasons = reasons
        assert self.best is not None
        self.emit(
            "best", {"iteration": number, "key": self.best.entrant.key, "source": self.best.source}
        )

    async def merge(self, finalists: list[Entrant], reasons: list[str]) -> Answer | None:
        """The synthesis: a code run merging the finalists' code (the text synthesis when the
        model cannot call tools, on the champion's code), or None when it failed."""
        request = (self.spec.prompt, self.spec.task)
        text_only = self.coder is None
        if self.coder is not None:
            own = UsageTally()  # the loop's token bound is the synthesis's, not the session's
            try:
                return await self.coder.synthesis(self.ref, own, request, finalists, reasons)
            except ToolsUnsupported:
                text_only = True
                self.emit("fallback", {"reason": "the synthesis model does not support tools"})
            except JobFailed as failure:
                self.emit("synthesis_failed", failure.as_error())
            finally:
                self.tally.merge(own)
        if not text_only:
            return None
        answer = await synthesize(
            self.router, self.recorder, self.ref, self.tally, request, finalists, reasons
        )
        champion = finalists[0]
        return replace(answer, branch=champion.branch, commit=champion.commit) if answer else None

    def result(self) -> dict[str, Any]:
        """The session's result (a code session's names the final code's branch and commit).
        Raises JobFailed when not even one answer was produced."""
        if self.best is None:
            code = "timeout" if self.timed_out else "no_candidates"
            raise JobFailed(code, "The session ended before any agent instance answered")
        result: dict[str, Any] = {
            "best": self.best.entrant.text,
            "best_key": self.best.entrant.key,
            "best_source": self.best.source,
            "best_iteration": self.best.iteration,
            "iterations_completed": self.completed,
            "timed_out": self.timed_out,
            "usage": self.tally.as_dict(),
        }
        if self.coder is not None:  # where the final code is
            result |= {"branch": self.best.entrant.branch, "commit": self.best.entrant.commit}
        return result


async def _unless(stop: asyncio.Event, work: Any) -> Any:
    """`work`'s result, or None as soon as `stop` is set (the work is then cancelled)."""
    task = asyncio.ensure_future(work)
    waiter = asyncio.ensure_future(stop.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    except BaseException:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        raise
    finally:
        waiter.cancel()
    if not task.done():
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        return None
    return task.result()

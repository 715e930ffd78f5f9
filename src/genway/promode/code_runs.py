"""Pro Mode on code: candidates and the synthesis as runs of the agent loop, each on a branch.

In a `code` or `qa` session a candidate works in a checkout of `genway/promode-<session>-<job>`,
started from the commit the session started from (improvements: from the incumbent's commit),
and its answer is a report the judge can compare: the loop's summary, the diff against the
session's starting commit and the output of the last command it ran. Every report diffs against
the same commit, so the incumbent and its improvements are compared as whole solutions. The
synthesis works on `genway/promode-<session>`, first pointed at the champion's commit, and merges
the other finalists' ideas into that code. Checkouts are removed however a run ends; branches
and their commits stay in the project's repository.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

from genway.agents.calls import JobRef, UsageTally
from genway.agents.context import user_message
from genway.agents.loop import AgentLoop, LoopLimits
from genway.agents.project_run import ProjectOptions
from genway.agents.recording import EventRecorder
from genway.agents.system_prompts import Task, system_prompt
from genway.agents.tools import COMMAND_ENV, Workspace, command_limits, work_specs
from genway.config import Settings
from genway.engines.llm.providers import ToolsUnsupported
from genway.engines.llm.router import ModelRouter
from genway.errors import GenwayError
from genway.jobs.events import EventType
from genway.projects import repos
from genway.projects.history import diff_commits
from genway.projects.service import ProjectNotFound, get_project
from genway.projects.workspaces import commit_worktree, open_worktree, remove_worktree
from genway.promode.schemas import InstanceInput
from genway.promode.steps import Answer, agent_role, generate
from genway.promode.tournament import Entrant
from genway.worker.context import JobContext, JobFailed

T = TypeVar("T")
CODE_TASKS = frozenset({Task.CODE, Task.QA})
DIFF_CHARS = 20_000
COMMAND_CHARS = 6_000
AUTHOR_EMAIL = "promode@genway.invalid"
UNFINISHED = {
    "max_steps": "it used all its steps",
    "max_tokens": "it used its token budget",
}
IMPROVE_CODE = (
    "Your directory holds the current best solution: your branch starts from its code. First "
    "review it: what is wrong, missing or weak, and what the judge criticised. Then improve the "
    "code in place, run the tests, and call `finish` with a summary that starts with your "
    "critique."
)
MERGE_CODE = (
    "You merge the finalists of a tournament of code changes into one final version. Your "
    "directory holds the winner's code. Bring the other finalists' better ideas into it (their "
    "diffs are shown), keep what the judge valued, fix what the judge criticised, run the "
    "tests, and call `finish` with a summary of the final code."
)


def candidate_branch(session_id: int, instance_id: int) -> str:
    return f"genway/promode-{session_id}-{instance_id}"


def session_branch(session_id: int) -> str:
    return f"genway/promode-{session_id}"


@dataclass
class CommandLog(Workspace):
    """A workspace that remembers the last command the agent ran and its output."""

    last_command: tuple[str, str] | None = None

    async def run_command(self, command: str, timeout_s: float | None = None) -> str:
        output = await super().run_command(command, timeout_s)
        self.last_command = (command, output)
        return output


@dataclass(frozen=True)
class RunOrder:
    """One loop run: where it works, what it is told, and what its report diffs against."""

    route: str
    branch: str
    start: str | None
    base: str | None
    system: str
    message: str
    model: str | None
    title: str


def report(summary: str, stop: str, diff: str, command: tuple[str, str] | None) -> str:
    """What the judge (and the synthesis) reads of a code run."""
    parts = [f"Summary:\n{summary.strip() or '(none)'}"]
    if stop in UNFINISHED:
        parts.append(f"The agent stopped before finishing: {UNFINISHED[stop]}.")
    parts.append(f"Diff against the starting code:\n{diff}")
    if command is None:
        parts.append("Last command run: none.")
    else:
        shown, output = command
        if len(output) > COMMAND_CHARS:
            output = "(output cut; its end:)\n" + output[-COMMAND_CHARS:]
        parts.append(f"Last command run:\n$ {shown}\n{output}")
    return "\n\n".join(parts)


def _diff_text(
    settings: Settings, org_id: int, project_id: int, old: str | None, new: str | None
) -> str:
    if new is None or old == new:
        return "(no changes)"
    path = repos.repo_path(repos.repos_root(settings), org_id, project_id)
    stat = diff_commits(repos.open_repo(path, create=False), old, new, patches=True)
    if not stat.files:
        return "(no changes)"
    body = "".join(f.patch or f"{f.status} {f.path}\n" for f in stat.files)
    if len(body) > DIFF_CHARS:
        body = f"{body[:DIFF_CHARS]}\n... (the diff is cut at {DIFF_CHARS} characters)"
    counts = f"{stat.files_changed} file(s) changed, +{stat.insertions} -{stat.deletions}"
    return f"{counts}\n{body}"


async def _guarded(work: Awaitable[T]) -> T:
    """`work`'s result; a repository error (a branch moved meanwhile, say) fails the run."""
    try:
        return await work
    except GenwayError as exc:
        raise JobFailed("workspace_failed", f"The run's branch: {exc.detail}") from exc


def _head(settings: Settings, org_id: int, project_id: int, branch: str) -> str | None:
    path = repos.repo_path(repos.repos_root(settings), org_id, project_id)
    return repos.branch_head(repos.open_repo(path), branch)


def _point(settings: Settings, org_id: int, project_id: int, branch: str, sha: str) -> None:
    path = repos.repo_path(repos.repos_root(settings), org_id, project_id)
    with repos.repo_lock(path):
        repo = repos.open_repo(path)
        current = repos.branch_head(repo, branch)
        if current != sha:
            repos.cas_ref(repo, branch, current, sha)


@dataclass
class CodeRunner:
    """A session's code runs on one project: its rules, sandbox settings and starting commit."""

    ctx: JobContext
    router: ModelRouter
    recorder: EventRecorder
    project_id: int
    header: str
    network: bool
    base: str | None

    @property
    def settings(self) -> Settings:
        return self.ctx.worker.settings

    async def candidate(self, ref: JobRef, tally: UsageTally, spec: InstanceInput) -> Answer:
        """An instance's code run. Raises ToolsUnsupported, JobFailed, JobCancelled."""
        system = f"{system_prompt(f'tools_{spec.task.value}')}\n\n{agent_role(spec.agent)}"
        start = spec.base_commit
        request = spec.prompt
        if spec.mode == "improve":
            start = spec.incumbent_commit or start
            notes = "\n".join(f"- {note}" for note in spec.notes) or "- (none)"
            request = (
                f"Request:\n{spec.prompt}\n\nThe current best solution's report:\n"
                f"{spec.incumbent or ''}\n\nWhat the judge said about earlier versions:\n{notes}"
                f"\n\n{IMPROVE_CODE}"
            )
        order = RunOrder(
            route=spec.task.value,
            branch=candidate_branch(spec.session_id, ref.job_id),
            start=start,
            base=spec.base_commit,
            system=system,
            message=user_message(request, None, self.header),
            model=spec.model,
            title=f"Pro Mode session {spec.session_id}: candidate {ref.job_id}",
        )
        return await self.run(ref, tally, order)

    async def synthesis(
        self,
        ref: JobRef,
        tally: UsageTally,
        request: tuple[str, Task],
        finalists: Sequence[Entrant],
        reasons: Sequence[str],
    ) -> Answer:
        """The finalists merged on the session's branch, which starts at the champion's commit.
        Raises ToolsUnsupported, JobFailed, JobCancelled."""
        prompt, task = request
        branch, champion = session_branch(ref.job_id), finalists[0]  # ref: the session
        if champion.commit is not None:
            await _guarded(
                asyncio.to_thread(
                    _point, self.settings, ref.org_id, self.project_id, branch, champion.commit
                )
            )
        shown = "\n\n".join(
            f"Finalist {number} ({'winner, your starting code' if number == 1 else 'runner-up'}"
            f", branch {entrant.branch or '(none)'}):\n{entrant.text}"
            for number, entrant in enumerate(finalists, start=1)
        )
        notes = "\n".join(f"- {reason}" for reason in reasons if reason) or "- (none)"
        message = f"Request:\n{prompt}\n\n{shown}\n\nThe judge's reasons:\n{notes}"
        order = RunOrder(
            route="synthesis",
            branch=branch,
            start=champion.commit,
            base=self.base,
            system=f"{system_prompt(f'tools_{task.value}')}\n\n{MERGE_CODE}",
            message=user_message(message, None, self.header),
            model=None,
            title=f"Pro Mode session {ref.job_id}: synthesis",
        )
        return await self.run(ref, tally, order)

    async def run(self, ref: JobRef, tally: UsageTally, order: RunOrder) -> Answer:
        """Check the branch out, run the loop, commit, report; the checkout is always removed."""
        settings = self.settings
        worktree = await _guarded(
            open_worktree(
                settings, ref.org_id, self.project_id, order.branch, start_point=order.start
            )
        )
        try:
            space = self._workspace(ref, worktree.path)
            loop = AgentLoop(
                ctx=self.ctx,
                router=self.router,
                recorder=self.recorder,
                ref=ref,
                tally=tally,
                workspace=space,
                task=order.route,
                system=order.system,
                limits=LoopLimits(settings.agent_max_steps, settings.agent_max_run_tokens),
                model_override=order.model,
            )
            specs = work_specs(commands=space.commands_available)
            outcome = await loop.run([{"role": "user", "content": order.message}], specs)
            commit = await _guarded(
                commit_worktree(
                    settings,
                    worktree,
                    (outcome.answer.strip() or order.title)[:2000],
                    author_name=f"Genway Pro Mode (job {ref.job_id})",
                    author_email=AUTHOR_EMAIL,
                )
            )
        finally:
            await remove_worktree(settings, worktree)
        head = commit or worktree.base_commit
        diff = await asyncio.to_thread(
            _diff_text, settings, ref.org_id, self.project_id, order.base, head
        )
        completion = outcome.completion
        model = f"{completion.provider}:{completion.model}" if completion else None
        text = report(outcome.answer, outcome.stop, diff, space.last_command)
        return Answer(text, model, branch=order.branch, commit=head)

    def _workspace(self, ref: JobRef, root: Path) -> CommandLog:
        limits = command_limits(self.settings, network=self.network)

        def stream(text: str) -> None:
            self.recorder.event(ref.job_id, ref.org_id, EventType.LOG, {"text": text})

        return CommandLog(root, limits, env=dict(COMMAND_ENV), on_output=stream)


async def code_runner(
    ctx: JobContext,
    router: ModelRouter,
    recorder: EventRecorder,
    org_id: int,
    project_id: int,
    base: str | None = None,
) -> CodeRunner:
    """The code runs of a session on a project; `base` defaults to the default branch's head.
    Raises JobFailed when the project is gone."""
    async with ctx.worker.database.sessions() as session:
        try:
            project = await get_project(session, org_id, project_id)
        except ProjectNotFound as exc:
            raise JobFailed("project_not_found", f"Project {project_id} not found") from exc
    options = ProjectOptions.of(project)
    lines = [f"Project: {project.name}"]
    if project.description:
        lines.append(f"Description: {project.description}")
    if options.rules:
        lines.append(f"Repository rules:\n{options.rules}")
    lines.append("Use the tools to look at the files; they are not shown here.")
    if base is None:
        settings = ctx.worker.settings
        base = await asyncio.to_thread(_head, settings, org_id, project_id, repos.DEFAULT_BRANCH)
    return CodeRunner(ctx, router, recorder, project_id, "\n".join(lines), options.network, base)


async def instance_answer(
    router: ModelRouter,
    recorder: EventRecorder,
    ref: JobRef,
    tally: UsageTally,
    spec: InstanceInput,
    project: str | None,
    coder: CodeRunner | None,
) -> Answer:
    """An instance's answer: a code run when the session has a runner, else (or when the model
    cannot call tools) a text answer. Raises LLMError, JobFailed, JobCancelled."""
    if coder is not None:
        try:
            return await coder.candidate(ref, tally, spec)
        except ToolsUnsupported:
            reason = {"reason": "the model does not support tool calls"}
            recorder.output(ref.job_id, ref.org_id, "fallback", reason)
    return await generate(router, recorder, ref, tally, spec, project)

"""The model calls of a Pro Mode session: an instance's answer, a judgement, a synthesis."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from genway.agents.calls import JobRef, UsageTally, call_model
from genway.agents.context import user_message
from genway.agents.recording import EventRecorder
from genway.agents.system_prompts import IMPROVE, JUDGE, SYNTHESIS, Task, system_prompt
from genway.engines.llm.providers import LLMError
from genway.engines.llm.router import ModelRouter
from genway.promode.schemas import InstanceInput
from genway.promode.tournament import Entrant, Verdict, parse_verdict

IMPROVED_MARKER = "IMPROVED ANSWER:"
CRITIQUE_MARKER = "CRITIQUE:"
CODE_JUDGING = (
    "Each candidate is a change to the project's code: the agent's summary, its diff against "
    "the code the session started from, and the output of the last command it ran (usually "
    "its tests). Judge the code in the diff and what the output shows, not the summary's claims."
)


@dataclass(frozen=True)
class Answer:
    """An answer; a code run's also names its branch and the commit at the branch's head."""

    text: str
    model: str | None
    critique: str | None = None
    branch: str | None = None
    commit: str | None = None


def agent_role(agent: str) -> str:
    return f"You are the '{agent}' agent of a team; give your own best answer."


def split_improvement(text: str) -> tuple[str | None, str]:
    """(critique, improved answer) from the improve prompt's layout; all of it is the answer
    when the model ignored the layout."""
    head, marker, answer = text.partition(IMPROVED_MARKER)
    if not marker:
        return None, text.strip()
    critique = head.strip()
    if critique.upper().startswith(CRITIQUE_MARKER):
        critique = critique[len(CRITIQUE_MARKER) :].strip()
    return critique or None, answer.strip()


def instance_messages(spec: InstanceInput, project: str | None) -> tuple[str, str]:
    """(system prompt, user message) for one agent instance."""
    role = agent_role(spec.agent)
    if spec.mode == "generate":
        return f"{system_prompt(spec.task)}\n\n{role}", user_message(spec.prompt, None, project)
    notes = "\n".join(f"- {note}" for note in spec.notes) or "- (none)"
    request = (
        f"Request:\n{spec.prompt}\n\nCurrent best answer:\n{spec.incumbent or ''}\n\n"
        f"What the judge said about earlier versions:\n{notes}"
    )
    system = (
        f"{system_prompt(IMPROVE)}\n\n{role}\n\n"
        f"The improved answer must follow these instructions:\n{system_prompt(spec.task)}"
    )
    return system, user_message(request, None, project)


async def generate(
    router: ModelRouter,
    recorder: EventRecorder,
    ref: JobRef,
    tally: UsageTally,
    spec: InstanceInput,
    project: str | None,
) -> Answer:
    """One instance's answer (streamed as the instance job's events). Raises LLMError."""
    system, message = instance_messages(spec, project)
    completion = await call_model(
        router,
        recorder,
        ref,
        tally,
        task=spec.task,
        messages=[{"role": "user", "content": message}],
        system=system,
        model_override=spec.model,
        every_attempt=False,  # dozens of calls per session: only the fallbacks are news
    )
    model = f"{completion.provider}:{completion.model}"
    if spec.mode == "improve":
        critique, text = split_improvement(completion.text)
        return Answer(text, model, critique)
    return Answer(completion.text.strip(), model)


async def judge(
    router: ModelRouter,
    recorder: EventRecorder,
    ref: JobRef,
    tally: UsageTally,
    prompt: str,
    a: Entrant,
    b: Entrant,
    *,
    code: bool = False,
) -> Verdict:
    """Which of two answers (with `code`, two code runs' reports) is better. A judge that cannot
    be reached keeps A (the higher seed), saying so, rather than ending the session."""
    request = f"Request:\n{prompt}\n\n{CODE_JUDGING}" if code else f"Request:\n{prompt}"
    message = f"{request}\n\nCandidate A:\n{a.text}\n\nCandidate B:\n{b.text}"
    try:
        completion = await call_model(
            router,
            recorder,
            ref,
            tally,
            task="judge",
            messages=[{"role": "user", "content": message}],
            system=system_prompt(JUDGE),
            stream=False,
            every_attempt=False,
        )
    except LLMError as error:
        return Verdict("A", f"Judge unavailable, A kept: {error}", parsed=False)
    return parse_verdict(completion.text)


async def synthesize(
    router: ModelRouter,
    recorder: EventRecorder,
    ref: JobRef,
    tally: UsageTally,
    request: tuple[str, Task],
    finalists: Sequence[Entrant],
    reasons: Sequence[str],
) -> Answer | None:
    """The finalists merged into one answer (streamed as the session's events); None when no
    synthesis model answered, and the champion stands."""
    shown = "\n\n".join(
        f"Finalist {number} ({'winner' if number == 1 else 'runner-up'}):\n{entrant.text}"
        for number, entrant in enumerate(finalists, start=1)
    )
    prompt, task = request
    notes = "\n".join(f"- {reason}" for reason in reasons if reason) or "- (none)"
    message = f"Request:\n{prompt}\n\n{shown}\n\nThe judge's reasons:\n{notes}"
    system = (
        f"{system_prompt(SYNTHESIS)}\n\nThe final answer must follow these instructions:\n"
        f"{system_prompt(task)}"
    )
    try:
        completion = await call_model(
            router,
            recorder,
            ref,
            tally,
            task="synthesis",
            messages=[{"role": "user", "content": message}],
            system=system,
            every_attempt=False,
        )
    except LLMError:
        return None
    return Answer(completion.text.strip(), f"{completion.provider}:{completion.model}")

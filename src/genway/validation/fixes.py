"""Follow-up agent runs on a pull request's branch: after a failed validation (counted against
the project's `max_fix_attempts`) or when a trusted reviewer comments `/genway fix ...`."""

from __future__ import annotations

from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from genway.agents.executors import AGENT_RUN
from genway.agents.schemas import MAX_PROMPT_CHARS, SourceType
from genway.config import Settings
from genway.github.models import PullRequest
from genway.jobs.models import Job
from genway.jobs.schemas import JobCreate
from genway.jobs.service import create_job
from genway.projects.models import Project
from genway.validation.service import project_submitter

OUTPUT_CHARS = 12_000


async def queue_fix_run(
    session: AsyncSession,
    settings: Settings,
    project: Project,
    pull: PullRequest,
    request: str,
    *,
    counted: bool,
    context: dict[str, Any] | None = None,
) -> Job:
    """An agent run on the pull request's branch with `request` as its prompt, in the caller's
    transaction. A `counted` run uses one of the pull request's fix attempts."""
    prompt = (
        f"You are fixing pull request #{pull.number} ('{pull.title}') on branch "
        f"{pull.head_branch}. {request}"
    )[:MAX_PROMPT_CHARS]
    spec = JobCreate(
        kind=AGENT_RUN,
        input={
            "task": "code",
            "prompt": prompt,
            "project_id": project.id,
            "branch": pull.head_branch,
            "source_type": SourceType.GITHUB_CHECK_SUITE if counted else SourceType.GITHUB,
            "metadata": {"pull_request": pull.number, "fix_attempt": counted},
            **({"context": context} if context else {}),
        },
        project_id=project.id,
        max_attempts=1,
    )
    job, _created = await create_job(
        session, project_submitter(project), spec, max_input_bytes=settings.job_input_max_bytes
    )
    if counted:
        pull.fix_attempts += 1
        await session.flush()
    return job


def failure_request(test_results: dict[str, Any]) -> str:
    """What a failed validation tells the fix run: the failing commands' output, the failed
    tests with their messages, the blocking lint findings."""
    lines = ["Validation of this pull request failed. Make the failing checks pass."]
    for command in test_results.get("commands", []):
        if command.get("passed"):
            continue
        lines.append(
            f"\n$ {command.get('command')}  ({command.get('phase')}, exit "
            f"{command.get('exit_code')})\n{command.get('output_tail') or ''}"
        )
    failures = (test_results.get("tests") or {}).get("failures") or []
    if failures:
        lines.append("\nFailed tests:")
        for failure in failures[:50]:
            lines.append(
                f"- {failure.get('classname') or ''}::{failure.get('name')}: "
                f"{(failure.get('message') or '')[:500]}"
            )
    findings = (test_results.get("lint") or {}).get("findings") or []
    if findings:
        lines.append("\nStatic check findings:")
        for finding in findings[:50]:
            lines.append(
                f"- {finding.get('path')}:{finding.get('line')} {finding.get('code')} "
                f"{finding.get('message')}"
            )
    text = "\n".join(lines)
    return text if len(text) <= OUTPUT_CHARS else text[:OUTPUT_CHARS] + "\n…(cut)"

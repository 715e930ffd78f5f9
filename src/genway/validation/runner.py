"""`validation.run`: validate one pull request's head commit.

1. Mark the validation running (`validation.started`) and tell GitHub (a check run in progress
   with an App, a pending commit status with a token).
2. Fetch the head into the project's mirror and export it into a fresh snapshot.
3. Run `setup_commands` (the deployment: `deployment_status` success or failed), then
   `test_commands`, then the static checks, each in the sandbox with the project's secrets as
   environment variables, their output streamed as `log` events; read the JUnit reports left.
4. Report the outcome to GitHub. A pass on a project with `auto_merge_enabled`, when GitHub says
   the pull request is mergeable at this very commit, merges it (the project's merge method).
   A failure of a Genway pull request queues a fix run with the failure's output, up to
   `max_fix_attempts`; after the last one the organization's admins and the run's author are
   notified.
5. `validation.completed` carries the outcome.

A validation that could not be carried out (GitHub unreachable, no sandbox on this worker) ends
`error`; its job fails with the reason, so the job's retries apply.
"""

from __future__ import annotations

import asyncio
import dataclasses
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import Field

import genway.models  # noqa: F401  (a worker process writes rows whose keys span every table)
from genway.agents.recording import EventRecorder
from genway.db import utcnow
from genway.github.client import GithubClient, GithubError
from genway.github.connections import GithubNotConnected, client_for
from genway.github.models import PullRequest
from genway.jobs.events import EventType
from genway.jobs.models import Job
from genway.kit.schemas import RequestModel
from genway.notifications.models import NotificationKind
from genway.notifications.service import notify_org_admins, notify_users
from genway.orgevents.emit import emit
from genway.orgevents.types import VALIDATION_COMPLETED, VALIDATION_STARTED
from genway.projects.models import Project
from genway.projects.pipeline import PipelineSettings, read_secrets
from genway.sandbox import SandboxLimits, SandboxUnavailable, run_sandboxed
from genway.validation import lint
from genway.validation.fixes import failure_request, queue_fix_run
from genway.validation.junit import parse_reports
from genway.validation.models import Validation, ValidationStatus
from genway.validation.service import VALIDATION_RUN
from genway.validation.snapshot import snapshot, update_mirror
from genway.worker.context import JobCancelled, JobContext, JobFailed, until_cancelled
from genway.worker.registry import executor

COMMAND_ENV = {"PYTHONDONTWRITEBYTECODE": "1", "CI": "true", "GENWAY_VALIDATION": "1"}
TAIL_CHARS = 4000
LINT_OUTPUT_BYTES = 1024 * 1024


class ValidationInput(RequestModel):
    validation_id: int = Field(ge=1, le=2**31 - 1)


@dataclass
class Loaded:
    validation: Validation
    project: Project
    pull: PullRequest
    pipeline: PipelineSettings
    secrets: dict[str, str]


@dataclass
class Outcome:
    commands: list[dict[str, Any]] = field(default_factory=list)
    deployment_status: str = "skipped"
    tests: dict[str, Any] | None = None
    lint: dict[str, Any] | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        commands_ok = all(c["passed"] for c in self.commands)
        blocking = bool((self.lint or {}).get("blocking_findings"))
        return commands_ok and not blocking and self.deployment_status != "failed"

    def results(self) -> dict[str, Any]:
        return {
            "passed": self.passed,
            "commands": self.commands,
            "tests": self.tests,
            "lint": self.lint,
            "notes": self.notes,
        }


class ValidationRun:
    def __init__(self, job: Job, ctx: JobContext, recorder: EventRecorder) -> None:
        self.job = job
        self.ctx = ctx
        self.recorder = recorder
        self.settings = ctx.worker.settings
        self.database = ctx.worker.database

    # -- the steps ---------------------------------------------------------------------------

    async def run(self, validation_id: int) -> dict[str, Any]:
        loaded = await self._start(validation_id)
        repo = loaded.project.github_repo or ""
        try:
            client = await self._client()
            check_run = await client.report(
                repo,
                loaded.validation.head_sha,
                state="pending",
                summary=f"Validating #{loaded.pull.number}",
                text="Setup, tests and static checks are running.",
                target_url=None,
            )
            mirror = await until_cancelled(
                self.ctx,
                update_mirror(
                    self.settings,
                    client,
                    loaded.project,
                    loaded.pull.number,
                    loaded.validation.head_sha,
                ),
            )
            async with snapshot(self.settings, mirror, loaded.validation.head_sha) as snap:
                await self._note(loaded.validation.id, snapshot_id=snap.id)
                outcome = await self._commands(loaded, snap.path)
        except (GithubError, GithubNotConnected, SandboxUnavailable) as exc:
            await self._finish_error(loaded, ValidationStatus.ERROR, str(exc))
            raise JobFailed("validation_error", str(exc)) from exc
        except (JobCancelled, asyncio.CancelledError):
            await asyncio.shield(
                self._finish_error(loaded, ValidationStatus.CANCELLED, "The job was cancelled")
            )
            raise
        merged = await self._conclude(loaded, client, outcome, check_run)
        return {
            "validation_id": loaded.validation.id,
            "pr_number": loaded.pull.number,
            "head_sha": loaded.validation.head_sha,
            "status": ValidationStatus.PASSED if outcome.passed else ValidationStatus.FAILED,
            "merged": merged,
            "test_results": outcome.results(),
        }

    async def _start(self, validation_id: int) -> Loaded:
        async with self.database.transaction() as session:
            validation = await session.get(Validation, validation_id)
            if (
                validation is None
                or validation.org_id != self.job.org_id
                or validation.job_id != self.job.id
            ):
                raise JobFailed(
                    "validation_not_found",
                    f"Validation {validation_id} is not this job's to run (validations are "
                    "started by GitHub's webhooks or POST .../validations/{id}/retry)",
                )
            project = await session.get(Project, validation.project_id)
            pull = await session.get(PullRequest, validation.pull_request_id)
            if project is None or pull is None or project.github_repo is None:
                raise JobFailed("project_not_pinned", "The project is no longer pinned")
            # The delivery may have come before the agent run recorded its pull request.
            validation.agent_run_id = validation.agent_run_id or pull.agent_run_id
            validation.status = ValidationStatus.RUNNING
            validation.started_at = validation.started_at or utcnow()
            validation.error = None
            await emit(session, self.job.org_id, VALIDATION_STARTED, _event(validation))
            pipeline = PipelineSettings.of(project.settings)
            # A fork's code could print them: its pull requests get none (as GitHub Actions does).
            secrets = {} if pull.from_fork else read_secrets(self.settings.secret_box, project)
            await session.flush()
            return Loaded(validation, project, pull, pipeline, secrets)

    async def _client(self) -> GithubClient:
        async with self.database.sessions() as session:
            return await client_for(session, self.settings, self.job.org_id)

    async def _commands(self, loaded: Loaded, root: Path) -> Outcome:
        outcome = Outcome()
        if loaded.pull.from_fork and loaded.project.secret_names:
            outcome.notes.append("The project's secrets were withheld: the head is a fork's")
        pipeline = loaded.pipeline
        limits = SandboxLimits(
            timeout_s=self.settings.agent_command_timeout_s,
            cpu_s=max(1, int(self.settings.agent_command_timeout_s)),
            memory_bytes=self.settings.agent_command_memory_mb * 1024 * 1024,
            network=bool((loaded.project.settings or {}).get("sandbox_network", False)),
        )
        env = {**loaded.secrets, **COMMAND_ENV}
        secrets = [value for value in loaded.secrets.values() if len(value) >= 4]
        if pipeline.setup_commands:
            outcome.deployment_status = "success"
            for command in pipeline.setup_commands:
                result = await self._run("setup", command, root, limits, env, secrets)
                outcome.commands.append(result)
                if not result["passed"]:
                    outcome.deployment_status = "failed"
                    return outcome
        for command in pipeline.test_commands:
            outcome.commands.append(await self._run("test", command, root, limits, env, secrets))
        report = await asyncio.to_thread(parse_reports, root)
        outcome.tests = report.as_dict() if report.files else None
        outcome.lint = await self._lint(pipeline, root, limits, env, secrets, outcome)
        return outcome

    async def _lint(
        self,
        pipeline: PipelineSettings,
        root: Path,
        limits: SandboxLimits,
        env: dict[str, str],
        secrets: list[str],
        outcome: Outcome,
    ) -> dict[str, Any] | None:
        if pipeline.lint_commands is not None:
            for command in pipeline.lint_commands:
                outcome.commands.append(
                    await self._run("lint", command, root, limits, env, secrets)
                )
            return None
        check = await asyncio.to_thread(lint.default_check, root)
        if check is None:
            return None
        lint_limits = dataclasses.replace(
            limits, output_bytes=LINT_OUTPUT_BYTES, extra_ro_paths=(check.binary,)
        )
        result = await run_sandboxed(
            check.command, workdir=root, limits=lint_limits, env=COMMAND_ENV
        )
        try:
            findings = lint.ruff_findings(result.output, await asyncio.to_thread(root.resolve))
        except ValueError:
            return {"tool": check.tool, "error": _tail(result.output), "findings": []}
        self.recorder.output(
            self.job.id, self.job.org_id, "lint", {"tool": check.tool, "findings": len(findings)}
        )
        return {
            "tool": check.tool,
            "rules": lint.DEFAULT_RULES,
            "findings": findings,
            "blocking_findings": len(findings),
        }

    async def _run(
        self,
        phase: str,
        command: str,
        root: Path,
        limits: SandboxLimits,
        env: dict[str, str],
        secrets: list[str],
    ) -> dict[str, Any]:
        self._log(f"$ {command}\n", secrets)
        started = time.monotonic()
        result = await until_cancelled(
            self.ctx,
            run_sandboxed(
                command,
                workdir=root,
                limits=limits,
                env=env,
                on_output=lambda text: self._log(text, secrets),
            ),
        )
        passed = result.exit_code == 0
        entry = {
            "phase": phase,
            "command": command,
            "exit_code": result.exit_code,
            "passed": passed,
            "timed_out": result.timed_out,
            "killed": result.killed,
            "duration_s": round(time.monotonic() - started, 3),
            "output_tail": _redact(_tail(result.output), secrets),
            "truncated": result.truncated,
        }
        self.recorder.output(
            self.job.id,
            self.job.org_id,
            "command",
            {k: entry[k] for k in ("phase", "command", "exit_code", "passed", "duration_s")},
        )
        return entry

    def _log(self, text: str, secrets: list[str]) -> None:
        data = {"text": _redact(text, secrets)}
        self.recorder.event(self.job.id, self.job.org_id, EventType.LOG, data)

    # -- the end -----------------------------------------------------------------------------

    async def _conclude(
        self, loaded: Loaded, client: GithubClient, outcome: Outcome, check_run: int | None
    ) -> bool:
        repo = loaded.project.github_repo or ""
        sha = loaded.validation.head_sha
        summary = _summary(outcome)
        try:
            await client.report(
                repo,
                sha,
                state="success" if outcome.passed else "failure",
                summary=summary,
                text=_details(outcome),
                target_url=None,
                check_run_id=check_run,
            )
        except GithubError as exc:
            outcome.notes.append(f"The outcome could not be reported to GitHub: {exc}")
        merged = eligible = False
        if outcome.passed and loaded.pipeline.auto_merge_enabled:
            try:
                pull = await client.pull(repo, loaded.pull.number)
                eligible = (
                    pull.get("state") == "open"
                    and pull.get("mergeable") is True
                    and pull["head"]["sha"] == sha
                )
                if eligible:
                    method = loaded.pipeline.merge_method.value
                    await client.merge_pull(repo, loaded.pull.number, sha=sha, method=method)
                    merged = True
                else:
                    outcome.notes.append("Not merged: GitHub does not call it mergeable at " + sha)
            except GithubError as exc:
                outcome.notes.append(f"Not merged: {exc}")
        await self._record_end(loaded, outcome, merged=merged, eligible=eligible)
        return merged

    async def _record_end(
        self, loaded: Loaded, outcome: Outcome, *, merged: bool, eligible: bool
    ) -> None:
        async with self.database.transaction() as session:
            validation = await session.get(Validation, loaded.validation.id)
            pull = await session.get(PullRequest, loaded.pull.id)
            project = await session.get(Project, loaded.project.id)
            assert validation is not None and pull is not None and project is not None
            validation.status = (
                ValidationStatus.PASSED if outcome.passed else ValidationStatus.FAILED
            )
            validation.agent_run_id = validation.agent_run_id or pull.agent_run_id
            validation.deployment_status = outcome.deployment_status
            validation.test_results = outcome.results()
            validation.auto_merge_eligible = eligible
            validation.merged = merged
            validation.finished_at = utcnow()
            if merged:
                pull.state = "merged"
            if not outcome.passed and pull.agent_run_id is not None and pull.state == "open":
                await self._after_failure(session, project, pull, validation, loaded.pipeline)
            await emit(session, self.job.org_id, VALIDATION_COMPLETED, _event(validation))

    async def _after_failure(
        self,
        session: Any,
        project: Project,
        pull: PullRequest,
        validation: Validation,
        pipeline: PipelineSettings,
    ) -> None:
        if pull.fix_attempts < pipeline.max_fix_attempts:
            job = await queue_fix_run(
                session,
                self.settings,
                project,
                pull,
                failure_request(validation.test_results),
                counted=True,
                context={"validation_id": validation.id},
            )
            validation.fix_run_id = job.id
            return
        title = f"Pull request #{pull.number} still fails validation"
        body = (
            f"{project.name}: validation {validation.id} of #{pull.number} ('{pull.title}') "
            f"failed after {pull.fix_attempts} fix attempts. {pull.url}"
        )
        data = {
            "project_id": project.id,
            "pull_request": pull.number,
            "validation_id": validation.id,
            "url": pull.url,
        }
        await notify_org_admins(
            session, project.org_id, NotificationKind.JOB_FAILED, title, body, data
        )
        author = await session.get(Job, pull.agent_run_id)
        if author is not None and author.user_id is not None:
            await notify_users(
                session,
                project.org_id,
                [author.user_id],
                NotificationKind.JOB_FAILED,
                title,
                body,
                data,
            )

    async def _finish_error(self, loaded: Loaded, status: ValidationStatus, message: str) -> None:
        async with self.database.transaction() as session:
            validation = await session.get(Validation, loaded.validation.id)
            if validation is None:
                return
            validation.status = status
            validation.error = message[:4000]
            validation.finished_at = utcnow()
            await emit(session, self.job.org_id, VALIDATION_COMPLETED, _event(validation))

    async def _note(self, validation_id: int, **fields: Any) -> None:
        async with self.database.transaction() as session:
            validation = await session.get(Validation, validation_id)
            if validation is not None:
                for key, value in fields.items():
                    setattr(validation, key, value)


def _event(validation: Validation) -> dict[str, Any]:
    results = validation.test_results or {}
    return {
        "validation_id": validation.id,
        "project_id": validation.project_id,
        "pr_number": validation.pr_number,
        "agent_run_id": validation.agent_run_id,
        "head_sha": validation.head_sha,
        "status": validation.status,
        "deployment_status": validation.deployment_status,
        "passed": results.get("passed"),
        "merged": validation.merged,
        "fix_run_id": validation.fix_run_id,
        "error": validation.error,
    }


def _tail(text: str) -> str:
    return text if len(text) <= TAIL_CHARS else "…" + text[-TAIL_CHARS:]


def _redact(text: str, secrets: list[str]) -> str:
    for secret in secrets:
        text = text.replace(secret, "***")
    return text


def _summary(outcome: Outcome) -> str:
    if outcome.deployment_status == "failed":
        return "Setup failed"
    parts = []
    tests = outcome.tests
    if tests:
        parts.append(
            f"{tests['passed']} passed, {tests['failed']} failed, {tests['errors']} errors, "
            f"{tests['skipped']} skipped"
        )
    failed = [c for c in outcome.commands if not c["passed"]]
    if failed:
        parts.append(f"{len(failed)} of {len(outcome.commands)} commands failed")
    if outcome.lint and outcome.lint.get("blocking_findings"):
        parts.append(f"{outcome.lint['blocking_findings']} static check findings")
    verdict = "Validation passed" if outcome.passed else "Validation failed"
    return f"{verdict}: {'; '.join(parts)}" if parts else verdict


def _details(outcome: Outcome) -> str:
    lines = []
    for command in outcome.commands:
        mark = "passed" if command["passed"] else f"failed (exit {command['exit_code']})"
        lines.append(f"- `{command['command']}` ({command['phase']}): {mark}")
    for failure in ((outcome.tests or {}).get("failures") or [])[:20]:
        lines.append(
            f"- test {failure['classname']}::{failure['name']}: {failure['message'][:300]}"
        )
    for finding in ((outcome.lint or {}).get("findings") or [])[:20]:
        lines.append(
            f"- {finding['path']}:{finding['line']} {finding['code']} {finding['message']}"
        )
    return "\n".join(lines) or "Nothing to run: the project has no setup or test commands."


@executor(
    VALIDATION_RUN,
    input_model=ValidationInput,
    default_timeout_s=1800.0,
    description="Validate a pull request's head: setup, tests and static checks in the sandbox",
)
async def run_validation(job: Job, ctx: JobContext) -> dict[str, Any]:
    spec = ValidationInput.model_validate(job.input)
    async with EventRecorder(ctx.worker.database, ctx.worker.broadcaster) as recorder:
        return await ValidationRun(job, ctx, recorder).run(spec.validation_id)

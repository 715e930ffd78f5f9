"""A code or QA run on a project: a fresh checkout of the run's branch, the tool loop (or, for
models without tool calling, a structured answer), a commit on the branch, the diff stat.

The branch is `genway/run-<id>` (a resumed run continues its predecessor's branch). The checkout
is removed when the run ends however it ends; the branch and its commit stay in the project's
repository, where `GET .../projects/{id}/diff` and `POST .../projects/{id}/merge` find them.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable
from dataclasses import dataclass, replace
from typing import Any, TypeVar

from genway.agents.calls import JobRef, UsageTally, call_model, llm_failure
from genway.agents.context import conversation, user_message
from genway.agents.edits import InvalidEdits, parse_edit_plan
from genway.agents.loop import AgentLoop, LoopLimits, LoopOutcome
from genway.agents.models import PENDING
from genway.agents.plans import AWAITING, plans_of, store_plan, waiting_s
from genway.agents.recording import EventRecorder
from genway.agents.schemas import AgentRunInput
from genway.agents.system_prompts import Task, system_prompt
from genway.agents.tools import (
    COMMAND_ENV,
    ToolError,
    Workspace,
    command_limits,
    plan_specs,
    work_specs,
)
from genway.engines.llm.providers import ChatMessage, LLMError, Message, ToolsUnsupported
from genway.engines.llm.router import ModelRouter
from genway.github.client import GithubClient, GithubError
from genway.github.connections import GithubNotConnected, client_for
from genway.github.pulls import publish, sync_branch
from genway.jobs.events import EventType
from genway.jobs.models import Job
from genway.projects.models import Project
from genway.projects.service import ProjectNotFound, get_project
from genway.projects.workspaces import (
    Worktree,
    commit_worktree,
    diff_stat,
    open_worktree,
    remove_worktree,
)
from genway.sandbox import sandbox_unavailable_reason
from genway.worker.context import JobContext, JobDeferred, JobFailed, until_cancelled

T = TypeVar("T")
AUTHOR_EMAIL = "agent@genway.invalid"
TITLE_CHARS = 120
FAILED_STOPS = {
    "max_steps": ("max_steps_reached", "The run used all its {n} steps before finishing"),
    "max_tokens": ("token_budget_exhausted", "The run used its token budget before finishing"),
}


@dataclass(frozen=True)
class ProjectOptions:
    """What a project's settings say about runs on it (issue-level defaults when unset)."""

    auto_confirm_plans: bool
    network: bool
    setup_commands: tuple[str, ...]
    planning_statement: str
    rules: str

    @classmethod
    def of(cls, project: Project) -> ProjectOptions:
        raw: dict[str, Any] = project.settings or {}
        commands = raw.get("setup_commands") or ()
        return cls(
            auto_confirm_plans=bool(raw.get("auto_confirm_plans", False)),
            network=bool(raw.get("sandbox_network", False)),
            setup_commands=tuple(str(c) for c in commands if isinstance(c, str)),
            planning_statement=str(raw.get("planning_statement") or ""),
            rules=str(raw.get("repository_rules") or ""),
        )


@dataclass
class ProjectRun:
    job: Job
    ctx: JobContext
    spec: AgentRunInput
    router: ModelRouter
    recorder: EventRecorder
    ref: JobRef
    tally: UsageTally
    project_id: int

    async def run(self) -> dict[str, Any]:
        settings = self.ctx.worker.settings
        project, plan_text = await self._load()
        options = ProjectOptions.of(project)
        branch = self.spec.branch or f"genway/run-{self.job.id}"
        github = await self._github(project)
        if github is not None:
            await self._github_step(sync_branch(settings, github, project, branch))
        worktree = await open_worktree(settings, self.job.org_id, self.project_id, branch)
        try:
            space = self._workspace(worktree, options)
            loop = self._loop(space, Task.CODE if self.spec.task is Task.CODE else Task.QA)
            if self.spec.plan_first and plan_text is None:
                plan_text = await self._plan(loop, project, options)
            outcome = await self._work(loop, space, project, options, plan_text)
            commit = await commit_worktree(
                settings,
                worktree,
                (outcome.answer.strip() or f"Agent run {self.job.id}")[:2000],
                author_name=f"Genway agent (run {self.job.id})",
                author_email=AUTHOR_EMAIL,
            )
            stat = await self._diff_stat(worktree, commit)
        finally:
            await remove_worktree(settings, worktree)
        result = self._result(outcome, branch, commit, stat, plan_text)
        if github is not None and commit is not None and outcome.stop not in FAILED_STOPS:
            result["pull_request"] = await self._open_pull_request(
                github, project, branch, outcome, plan_text
            )
        if outcome.stop in FAILED_STOPS:
            code, message = FAILED_STOPS[outcome.stop]
            raise JobFailed(code, message.format(n=loop.limits.max_steps), details=result)
        return result

    # -- GitHub ------------------------------------------------------------------------------

    async def _github(self, project: Project) -> GithubClient | None:
        """The organization's GitHub client when the project is pinned, else None."""
        if project.github_repo is None:
            return None
        async with self.ctx.worker.database.sessions() as session:
            try:
                return await client_for(session, self.ctx.worker.settings, self.job.org_id)
            except GithubNotConnected as exc:
                raise JobFailed("github_not_connected", str(exc.detail)) from exc

    async def _github_step(self, step: Awaitable[T]) -> T:
        try:
            return await until_cancelled(self.ctx, step)
        except GithubError as exc:
            raise JobFailed("github_error", str(exc.detail)) from exc

    async def _open_pull_request(
        self,
        github: GithubClient,
        project: Project,
        branch: str,
        outcome: LoopOutcome,
        plan: str | None,
    ) -> dict[str, Any]:
        """Push the branch and open its pull request (or update the open one)."""
        summary = outcome.answer.strip()
        title = summarize_title(summary) or f"Genway agent run {self.job.id}"
        body = f"{summary}\n\n" if summary else ""
        if plan:
            body += f"### Plan\n\n{plan}\n\n"
        body += f"Opened by Genway agent run {self.job.id} on branch `{branch}`."
        async with self.ctx.worker.database.transaction() as session:
            published = await self._github_step(
                publish(
                    session,
                    self.ctx.worker.settings,
                    github,
                    project,
                    branch=branch,
                    run_id=self.job.id,
                    title=title,
                    body=body[:60_000],
                )
            )
        data = {
            "number": published.number,
            "url": published.url,
            "title": published.title,
            "created": published.created,
            "head_sha": published.head_sha,
        }
        self._output("pull_request", data)
        return data

    # -- phases ------------------------------------------------------------------------------

    async def _load(self) -> tuple[Project, str | None]:
        async with self.ctx.worker.database.sessions() as session:
            try:
                project = await get_project(session, self.job.org_id, self.project_id)
            except ProjectNotFound as exc:
                message = f"Project {self.project_id} not found"
                raise JobFailed("project_not_found", message) from exc
            plans = await plans_of(session, [self.job.id])
        row = plans.get(self.job.id)
        if row is None:  # a new run (a planned one comes back here with its plan)
            request = {"task": self.spec.task, "prompt": self.spec.prompt}
            self._output("request", request)
            return project, None
        if row.status == PENDING:
            left = waiting_s(row, self.ctx.worker.settings.agent_plan_wait_s)
            if left <= 0:
                raise JobFailed("plan_not_confirmed", "Nobody confirmed the plan in time")
            raise JobDeferred(AWAITING, left)
        return project, row.plan

    async def _plan(self, loop: AgentLoop, project: Project, options: ProjectOptions) -> str:
        """Look around, write the plan; wait for confirmation unless the project skips it."""
        prompt = self.spec.prompt
        if options.planning_statement:
            prompt = f"{prompt}\n\nPlanning guidance: {options.planning_statement}"
        messages: list[Message] = list(self._messages(prompt, project, options))
        planner = replace(loop, system=system_prompt("plan"))
        try:
            outcome = await planner.run(messages, plan_specs())
        except ToolsUnsupported:
            outcome = await self._plan_in_text(messages)
        plan = (outcome.plan or outcome.answer).strip() or "(the model gave no plan)"
        async with self.ctx.worker.database.transaction() as session:
            store_plan(session, self.job, plan, confirmed=options.auto_confirm_plans)
        self._output("plan", {"plan": plan, "confirmed": options.auto_confirm_plans})
        if not options.auto_confirm_plans:
            await self.recorder.flush()
            raise JobDeferred(AWAITING, self.ctx.worker.settings.agent_plan_wait_s)
        return plan

    async def _plan_in_text(self, messages: list[Message]) -> LoopOutcome:
        completion = await self._text_call(messages, system_prompt("plan"))
        return LoopOutcome("plan", completion.text, 1, completion, plan=completion.text)

    async def _work(
        self,
        loop: AgentLoop,
        space: Workspace,
        project: Project,
        options: ProjectOptions,
        plan: str | None,
    ) -> LoopOutcome:
        setup = await self._setup(space, options)
        prompt = self.spec.prompt
        if plan:
            prompt = f"{prompt}\n\nCarry out this confirmed plan:\n{plan}"
        if setup:
            prompt = f"{prompt}\n\nThe project's setup commands ran first:\n{setup}"
        if (reason := sandbox_unavailable_reason()) is not None:
            prompt = f"{prompt}\n\n(Commands cannot run on this worker, so there is no "
            prompt += f"run_command tool: {reason})"
        messages: list[Message] = list(self._messages(prompt, project, options))
        try:
            return await loop.run(messages, work_specs(commands=space.commands_available))
        except ToolsUnsupported:
            self._output("fallback", {"reason": "the model does not support tool calls"})
            return await self._structured(space, messages)

    async def _setup(self, space: Workspace, options: ProjectOptions) -> str:
        """Run the project's setup commands in the sandbox; their outcome is told to the model."""
        if not options.setup_commands:
            return ""
        if not space.commands_available:
            return "(not run: sandboxed commands are unavailable on this worker)"
        reports = []
        for command in options.setup_commands:
            try:
                output = await until_cancelled(self.ctx, space.run_command(command))
            except ToolError as exc:
                output = f"Error: {exc}"
            self._output("setup_command", {"command": command, "output": output[:4000]})
            reports.append(f"$ {command}\n{output[:4000]}")
        return "\n".join(reports)

    async def _structured(self, space: Workspace, messages: list[Message]) -> LoopOutcome:
        """Models without tools: one answer holding a JSON edit plan, one repair round when it
        cannot be used; an answer with no JSON at all is an answer that needs no edits."""
        listing = await asyncio.to_thread(space.list_files)
        system = system_prompt(Task.CODE)
        turns: list[Message] = [*messages]
        turns.append({"role": "user", "content": f"The project's files:\n{listing}"})
        turns = _merged_users(turns)
        completion = await self._text_call(turns, system)
        for repair in (False, True):
            try:
                plan = parse_edit_plan(completion.text)
                break
            except InvalidEdits as exc:
                if "no JSON object found" in str(exc) and not repair:
                    return LoopOutcome("answer", completion.text, 1, completion)
                if repair:
                    raise JobFailed("invalid_edits", str(exc)) from exc
                turns += [
                    {"role": "assistant", "content": completion.text},
                    {
                        "role": "user",
                        "content": f"That answer cannot be used: {exc}. Answer again with the "
                        "JSON object only, as the instructions show.",
                    },
                ]
                completion = await self._text_call(turns, system)
        outcome = LoopOutcome("answer", plan.summary or completion.text, 2, completion)
        for edit in plan.edits:
            try:
                if edit.action == "delete":
                    target = space.resolve(edit.path)
                    await asyncio.to_thread(target.unlink, True)
                else:
                    await asyncio.to_thread(space.write_file, edit.path, edit.content or "")
            except (ToolError, OSError) as exc:
                raise JobFailed("edits_rejected", f"The agent's edits were refused: {exc}") from exc
            outcome.changed.append(edit.path)
        self._output("edits", {"files": [{"path": e.path, "action": e.action} for e in plan.edits]})
        return outcome

    # -- pieces ------------------------------------------------------------------------------

    def _messages(
        self, prompt: str, project: Project, options: ProjectOptions
    ) -> list[ChatMessage]:
        lines = [f"Project: {project.name}"]
        if project.description:
            lines.append(f"Description: {project.description}")
        if options.rules:
            lines.append(f"Repository rules:\n{options.rules}")
        lines.append("Use the tools to look at the files; they are not shown here.")
        message = user_message(prompt, self.spec.context, "\n".join(lines), len(self.spec.images))
        return conversation([t.model_dump() for t in self.spec.history], message)

    def _workspace(self, worktree: Worktree, options: ProjectOptions) -> Workspace:
        limits = command_limits(self.ctx.worker.settings, network=options.network)

        def stream(text: str) -> None:
            self.recorder.event(self.job.id, self.job.org_id, EventType.LOG, {"text": text})

        return Workspace(worktree.path, limits, env=dict(COMMAND_ENV), on_output=stream)

    def _loop(self, space: Workspace, task: Task) -> AgentLoop:
        settings = self.ctx.worker.settings
        steps = min(self.spec.max_steps or settings.agent_max_steps, settings.agent_max_steps)
        return AgentLoop(
            ctx=self.ctx,
            router=self.router,
            recorder=self.recorder,
            ref=self.ref,
            tally=self.tally,
            workspace=space,
            task=task.value,
            system=system_prompt(f"tools_{task.value}"),
            limits=LoopLimits(max_steps=steps, max_tokens=settings.agent_max_run_tokens),
            model_override=self.spec.model,
        )

    async def _text_call(self, messages: list[Message], system: str) -> Any:
        call = call_model(
            self.router,
            self.recorder,
            self.ref,
            self.tally,
            task=self.spec.task.value,
            messages=messages,
            system=system,
            model_override=self.spec.model,
        )
        try:
            return await until_cancelled(self.ctx, call)
        except LLMError as error:
            raise llm_failure(error) from error

    async def _diff_stat(self, worktree: Worktree, commit: str | None) -> dict[str, Any] | None:
        if commit is None:
            return None
        base = worktree.base_commit
        if base is None:
            return None
        stat = await diff_stat(
            self.ctx.worker.settings, self.job.org_id, self.project_id, base, commit
        )
        return {
            "files_changed": stat.files_changed,
            "insertions": stat.insertions,
            "deletions": stat.deletions,
            "files": [
                {
                    "path": f.path,
                    "status": f.status,
                    "insertions": f.insertions,
                    "deletions": f.deletions,
                }
                for f in stat.files
            ],
        }

    def _result(
        self,
        outcome: LoopOutcome,
        branch: str,
        commit: str | None,
        stat: dict[str, Any] | None,
        plan: str | None,
    ) -> dict[str, Any]:
        completion = outcome.completion
        return {
            "task": self.spec.task.value,
            "text": outcome.answer,
            "stop": outcome.stop,
            "steps": outcome.steps,
            "tool_calls": outcome.tool_calls,
            "model": f"{completion.provider}:{completion.model}" if completion else None,
            "finish_reason": completion.finish_reason if completion else None,
            "project_id": self.project_id,
            "branch": branch,
            "commit": commit,
            "diff_stat": stat,
            "plan": plan,
        }

    def _output(self, name: str, data: dict[str, Any]) -> None:
        self.recorder.output(self.job.id, self.job.org_id, name, data)


def _merged_users(turns: list[Message]) -> list[Message]:
    """Consecutive user turns as one (the vendors expect turns to alternate)."""
    merged: list[Message] = []
    for turn in turns:
        previous = merged[-1] if merged else None
        if (
            previous is not None
            and previous["role"] == "user"
            and turn["role"] == "user"
            and "content" in turn
        ):
            merged[-1] = {"role": "user", "content": f"{previous['content']}\n\n{turn['content']}"}
        else:
            merged.append(turn)
    return merged


def summarize_title(summary: str) -> str:
    """A pull request title: the summary's first non-empty line, shortened."""
    for line in summary.splitlines():
        line = line.strip().lstrip("#").strip()
        if line:
            return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1] + "…"
    return ""

"""Agent runs: the `agent.run` job input, Codegen's request and response shapes (from its
published OpenAPI spec), and seed 002's run-agent shapes."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, Field, ValidationError

from genway.agents.system_prompts import Task
from genway.errors import InvalidInput
from genway.jobs.schemas import WebhookOptions
from genway.kit.json_limits import bounded_json
from genway.kit.schemas import MAX_ID, RequestModel, ResponseModel

MAX_PROMPT_CHARS = 100_000
ModelName = Annotated[
    str,
    Field(
        max_length=200,
        pattern=r"^[A-Za-z0-9_-]+:\S+$",
        description="`provider:model`, e.g. `openai:gpt-4o`; overrides the router",
    ),
]
Metadata = Annotated[
    dict[str, Any], AfterValidator(lambda v: bounded_json(v, max_bytes=64 * 1024, max_depth=8))
]
Context = Annotated[
    dict[str, Any], AfterValidator(lambda v: bounded_json(v, max_bytes=256 * 1024, max_depth=8))
]
Image = Annotated[str, Field(pattern=r"^data:image/[a-zA-Z0-9.+-]+;base64,", max_length=700_000)]
Prompt = Annotated[str, Field(min_length=1, max_length=MAX_PROMPT_CHARS)]


def _branch_name(value: str) -> str:
    """Git's rules for a branch name, the subset a run's branch can need."""
    parts = value.split("/")
    if value.startswith("-") or ".." in value or value.endswith((".", ".lock")):
        raise ValueError("not a valid git branch name")
    if any(not part or part.startswith(".") for part in parts):
        raise ValueError("not a valid git branch name")
    return value


Branch = Annotated[
    str,
    Field(max_length=200, pattern=r"^[A-Za-z0-9._/-]+$", description="A git branch name"),
    AfterValidator(_branch_name),
]
MaxSteps = Annotated[
    int, Field(ge=1, le=500, description="Genway: at most this many model turns (tool runs)")
]
PlanFirst = Annotated[
    bool,
    Field(
        description="Genway: write a plan first and wait for `POST .../confirm` before changing "
        "code (projects with `auto_confirm_plans` go on at once)"
    ),
]


class SourceType(StrEnum):
    """Codegen's `ApiAgentRunSourceType`; runs made through Genway's API are `API`."""

    LOCAL = "LOCAL"
    SLACK = "SLACK"
    GITHUB = "GITHUB"
    GITHUB_CHECK_SUITE = "GITHUB_CHECK_SUITE"
    GITHUB_PR_REVIEW = "GITHUB_PR_REVIEW"
    LINEAR = "LINEAR"
    API = "API"
    CHAT = "CHAT"
    JIRA = "JIRA"
    CLICKUP = "CLICKUP"
    MONDAY = "MONDAY"
    SETUP_COMMANDS = "SETUP_COMMANDS"


# Codegen's `agent_type`: which agent implementation runs (not what it works on: that is `task`).
CodegenAgentType = Literal["codegen", "claude_code"]


class Turn(RequestModel):
    role: Literal["user", "assistant"]
    content: str = Field(max_length=MAX_PROMPT_CHARS)


class AgentRunInput(RequestModel):
    """The input of an `agent.run` job."""

    task: Task = Task.CODE
    prompt: Prompt
    project_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    context: Context | None = None
    model: ModelName | None = None
    images: list[Image] = Field(default_factory=list, max_length=10)
    metadata: Metadata | None = None
    agent_type: CodegenAgentType | None = None
    repo_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    source_type: SourceType = SourceType.API
    history: list[Turn] = Field(default_factory=list, max_length=50)
    resumed_from: int | None = None
    plan_first: PlanFirst = False
    branch: Branch | None = None
    max_steps: MaxSteps | None = None


def agent_input(**fields: Any) -> AgentRunInput:
    """An `agent.run` input assembled from a request's parts. Raises InvalidInput."""
    try:
        return AgentRunInput.model_validate(fields)
    except ValidationError as exc:
        raise InvalidInput(
            [{"type": e["type"], "loc": ["body", *e["loc"]], "msg": e["msg"]} for e in exc.errors()]
        ) from exc


class CreateAgentRun(WebhookOptions):
    """Codegen's `CreateAgentRunInput`, plus Genway's optional `task` and `project_id`."""

    prompt: Prompt
    images: list[Image] | None = Field(default=None, max_length=10)
    metadata: Metadata | None = None
    repo_id: int | None = Field(default=None, ge=1, le=MAX_ID)
    model: ModelName | None = None
    agent_type: CodegenAgentType | None = None
    task: Task | None = Field(default=None, description="Genway: the agent task (default code)")
    project_id: int | None = Field(
        default=None, ge=1, le=MAX_ID, description="Genway: the project to edit"
    )
    plan_first: PlanFirst = False
    max_steps: MaxSteps | None = None


class ConfirmPlan(RequestModel):
    """Genway: go on with the run's plan, or with this edited plan."""

    plan: str | None = Field(default=None, min_length=1, max_length=MAX_PROMPT_CHARS)


class ResumeAgentRun(WebhookOptions):
    """Codegen's `ResumeAgentRunInput`: continue a finished run with a new prompt."""

    agent_run_id: int = Field(ge=1, le=MAX_ID)
    prompt: Prompt
    images: list[Image] | None = Field(default=None, max_length=10)


class GithubPullRequest(BaseModel):
    id: int
    title: str | None = None
    url: str | None = None
    created_at: str
    head_branch_name: str | None = None


class AgentRunResponse(BaseModel):
    """Codegen's `AgentRunResponse`."""

    id: int
    organization_id: int
    status: str | None
    created_at: str | None
    web_url: str | None
    result: str | None
    summary: str | None
    source_type: SourceType | None
    github_pull_requests: list[GithubPullRequest] | None
    metadata: dict[str, Any] | None
    plan: str | None = Field(default=None, description="Genway: the run's plan, when it made one")
    branch: str | None = Field(default=None, description="Genway: the branch the run works on")
    commit: str | None = Field(default=None, description="Genway: the run's commit")
    diff_stat: dict[str, Any] | None = Field(default=None, description="Genway: what it changed")


class AgentRunLog(BaseModel):
    """Codegen's `AgentRunLogResponse`."""

    agent_run_id: int
    created_at: str | None = None
    tool_name: str | None = None
    message_type: str | None = None
    thought: str | None = None
    observation: dict[str, Any] | str | None = None
    tool_input: dict[str, Any] | None = None
    tool_output: dict[str, Any] | None = None


class AgentRunWithLogs(BaseModel):
    """Codegen's `AgentRunWithLogsResponse`."""

    id: int
    organization_id: int
    status: str | None
    created_at: str | None
    web_url: str | None
    result: str | None
    metadata: dict[str, Any] | None
    logs: list[AgentRunLog]
    total_logs: int | None
    page: int | None
    size: int | None
    pages: int | None


class RunAgentRequest(WebhookOptions):
    """Seed 002's `POST /v1/run-agent`; `agent_type` there is the task."""

    project_id: int = Field(ge=1, le=MAX_ID)
    agent_type: Task
    input_context: Context = Field(default_factory=dict)
    prompt: Prompt | None = Field(default=None, description="Genway: the request (else context)")
    model: ModelName | None = None


class RunAgentResponse(ResponseModel):
    job_id: int
    status: str
    estimated_time: int = Field(description="Seconds, from this organization's recent runs")


class LegacyAgentJob(ResponseModel):
    job_id: int
    project_id: int | None
    agent_type: str | None
    kind: str
    status: str
    progress: float
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    created_at: datetime
    started_at: datetime | None
    completed_at: datetime | None


class LegacyAgentJobList(ResponseModel):
    project_id: int
    count: int
    jobs: list[LegacyAgentJob]

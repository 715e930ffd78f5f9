"""Pro Mode requests, the session and instance job inputs, and the session views."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import Field, model_validator

from genway.agents.schemas import ModelName, Prompt
from genway.agents.system_prompts import Task
from genway.jobs.schemas import WebhookOptions
from genway.kit.schemas import RequestModel, ResponseModel

Sha = Annotated[str, Field(pattern=r"^[0-9a-f]{40}$")]
AgentName = Annotated[str, Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9][\w .-]*$")]
MAX_CANDIDATES = 16


class ProModeRequest(WebhookOptions):
    """Seed 000's Pro Mode request, plus Genway's optional `candidates`, `task` and `model`."""

    prompt: Prompt
    agents: list[AgentName] = Field(default_factory=lambda: ["general-purpose"], min_length=1)
    max_iterations: int = Field(default=3, ge=1, le=10)
    timeout_minutes: float = Field(default=60, gt=0, le=24 * 60)
    candidates: int | None = Field(
        default=None,
        ge=2,
        le=MAX_CANDIDATES,
        description="Answers per iteration (default: one per agent, at least 2)",
    )
    task: Task = Task.CODE
    model: ModelName | None = Field(default=None, description="Model for the candidates")

    @model_validator(mode="after")
    def _bounded(self) -> ProModeRequest:
        if len(self.agents) > MAX_CANDIDATES:
            raise ValueError(f"at most {MAX_CANDIDATES} agents")
        return self

    @property
    def candidate_count(self) -> int:
        return self.candidates or max(2, len(self.agents))


class SessionInput(RequestModel):
    """The input of a `promode.session` job."""

    prompt: Prompt
    agents: list[AgentName] = Field(min_length=1, max_length=MAX_CANDIDATES)
    candidates: int = Field(ge=2, le=MAX_CANDIDATES)
    max_iterations: int = Field(ge=1, le=10)
    timeout_minutes: float = Field(gt=0, le=24 * 60)
    task: Task
    model: ModelName | None = None
    project_id: int


class InstanceInput(RequestModel):
    """The input of a `promode.agent` job: one agent instance of a session's iteration."""

    session_id: int
    iteration: int = Field(ge=1)
    index: int = Field(ge=0)
    agent: AgentName
    mode: Literal["generate", "improve"]
    task: Task
    prompt: Prompt
    model: ModelName | None = None
    project_id: int | None = None
    incumbent: str | None = None
    notes: list[str] = Field(default_factory=list)
    # Code sessions: the commit the session started from (what reports diff against) and, in
    # improve mode, the incumbent's commit (where the instance's branch starts).
    base_commit: Sha | None = None
    incumbent_commit: Sha | None = None


class SessionSummary(ResponseModel):
    id: int
    project_id: int | None
    status: str
    prompt: str
    agents: list[str]
    candidates: int
    max_iterations: int
    timeout_minutes: float
    iterations_completed: int = 0
    timed_out: bool = False
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    events_url: str


class CandidateView(ResponseModel):
    key: str
    job_id: int
    index: int
    agent: str
    mode: str
    status: str
    model: str | None = None
    text: str | None = None
    critique: str | None = None
    branch: str | None = None
    commit: str | None = None
    error: dict[str, Any] | None = None


class IterationView(ResponseModel):
    iteration: int
    mode: str
    candidates: list[CandidateView]
    judgements: list[dict[str, Any]]
    bracket: dict[str, Any] | None = None
    synthesis: dict[str, Any] | None = None
    best: dict[str, Any] | None = None


class SessionDetail(SessionSummary):
    iterations: list[IterationView]
    best: str | None = None
    branch: str | None = Field(default=None, description="Code sessions: the final code's branch")
    commit: str | None = None
    usage: dict[str, Any] | None = None
    error: dict[str, Any] | None = None

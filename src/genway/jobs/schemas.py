"""Job requests and responses (canonical and legacy)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import AliasChoices, Field

from genway.kit.schemas import MAX_ID, RequestModel, ResponseModel

WebhookFilter = Literal["start", "output", "logs", "completed"]


class WebhookOptions(RequestModel):
    """A job's own webhook (Replicate's model), accepted wherever a job is created."""

    webhook: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://[^\s/?#]+",
        description="A URL told of this job's events by a signed POST (Standard Webhooks; the "
        "secret is the organization's, `GET .../webhooks/default/secret`)",
        examples=["https://example.com/hooks/genway"],
    )
    webhook_events_filter: list[WebhookFilter] | None = Field(
        default=None,
        min_length=1,
        description="Which events reach `webhook` (default all): `start`, `output` and `logs` "
        "(each at most every 500 ms), `completed`",
    )


class JobCreate(WebhookOptions):
    kind: str = Field(min_length=1, max_length=64, examples=["diagnostic.sleep"])
    input: dict[str, Any] = Field(default_factory=dict)
    priority: int = Field(default=0, ge=-100, le=100, description="Higher runs first")
    timeout_s: float | None = Field(default=None, gt=0, le=7 * 24 * 3600)
    max_attempts: int = Field(default=3, ge=1, le=20)
    project_id: int | None = Field(default=None, ge=1, le=MAX_ID)


# The fields of a job request besides its `kind` and `input`: what seed 001's bodies (image
# parameters at the top level) carry as options of the job rather than as its input.
JOB_OPTIONS = tuple(name for name in JobCreate.model_fields if name not in ("kind", "input"))


class JobError(ResponseModel):
    code: str
    message: str
    details: Any = None


class JobResponse(ResponseModel):
    id: int
    org_id: int
    project_id: int | None
    parent_id: int | None
    user_id: int | None
    kind: str
    status: str
    priority: int
    progress: float
    progress_message: str | None
    attempts: int
    max_attempts: int
    timeout_s: float
    input: dict[str, Any]
    result: dict[str, Any] | None
    error: dict[str, Any] | None
    idempotency_key: str | None
    cancel_requested: bool
    webhook: str | None = None
    webhook_events_filter: list[str] | None = Field(
        default=None, validation_alias=AliasChoices("webhook_events", "webhook_events_filter")
    )
    queue_position: int | None = Field(
        default=None,
        description="1 for the next job to run, while queued; computed when the job is read "
        "(null in the answer to a submit)",
    )
    estimated_start_at: datetime | None = Field(
        default=None,
        description="While queued: when the job is expected to start, from its kind's recent "
        "run times (the median of its organization's last runs when it has 5 or more, else of "
        "every organization's, else 60 s) and the slots it waits for (its organization's "
        "concurrency limit and share of the worker slots, the running jobs that hold them); "
        "never before a retry's or deferral's `run_after`. An estimate, computed when the job "
        "is read (null in the answer to a submit, once started, and for a suspended "
        "organization)",
    )
    estimated_finish_at: datetime | None = Field(
        default=None,
        description="While running: `started_at` plus its kind's typical run time; a job "
        "running longer than that is overdue and shows a moment from now (never a time in the "
        "past). Null otherwise",
    )
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    updated_at: datetime


class JobPage(ResponseModel):
    items: list[JobResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")


class CancelResponse(JobResponse):
    message: str


class LegacyJobCreated(ResponseModel):
    job_id: int
    status: str
    kind: str
    created_at: datetime
    status_url: str
    events_url: str

"""The queue as owners and platform admins see and steer it."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import Field

from genway.kit.schemas import RequestModel, ResponseModel

# The bounds `JobCreate.priority` accepts: a change of priority stays within them.
PRIORITY_MIN = -100
PRIORITY_MAX = 100

WaitingFor = Literal["queue_paused", "kind_paused", "retry_delay"]


class QueuedJob(ResponseModel):
    position: int = Field(
        description="1 for the organization's next job to start; its turn against other "
        "organizations' jobs depends on how many each already runs (fair scheduling)"
    )
    id: int
    kind: str
    priority: int
    user_id: int | None
    created_at: datetime
    run_after: datetime
    waiting_for: WaitingFor | None = Field(
        description="Why it cannot start now: `queue_paused` (this organization's queue), "
        "`kind_paused` (platform maintenance), `retry_delay` (until `run_after`); null: its turn"
    )


class OrgQueue(ResponseModel):
    org_id: int
    paused: bool
    paused_at: datetime | None
    counts: dict[str, int] = Field(description="The organization's jobs by status")
    paused_kinds: list[str] = Field(description="Kinds a platform admin paused for maintenance")
    pending: list[QueuedJob] = Field(description="Queued jobs in the order they will start")


class PriorityChange(RequestModel):
    priority: int = Field(ge=PRIORITY_MIN, le=PRIORITY_MAX, description="Higher runs first")


class PauseRequest(RequestModel):
    reason: str | None = Field(default=None, max_length=500)


class QueuePauseView(ResponseModel):
    scope: str
    target: str
    reason: str | None
    paused_by: int | None
    paused_at: datetime


class BackendView(ResponseModel):
    id: str = Field(description="The backend's id in admin paths (a digest of its URL)")
    url: str = Field(description="Its URL, credentials redacted")
    state: str
    queue_length: int
    paused: bool


class MaintenanceView(ResponseModel):
    paused_kinds: list[QueuePauseView]
    paused_backends: list[QueuePauseView]
    paused_org_ids: list[int] = Field(description="Organizations whose owners paused their queue")

"""The organization's event types, how a job event is named among them, and `*` patterns."""

from __future__ import annotations

from collections.abc import Iterable
from fnmatch import fnmatchcase
from typing import Any

from genway.jobs.events import EventType

JOB_STATUS_TYPES = {
    "queued": "job.queued",
    "running": "job.started",
    "succeeded": "job.succeeded",
    "failed": "job.failed",
    "cancelled": "job.cancelled",
}
JOB_EVENT_TYPES = {
    EventType.PROGRESS: "job.progress",
    EventType.LOG: "job.log",
    EventType.OUTPUT: "job.output",
    EventType.CANCEL_REQUESTED: "job.cancel_requested",
}
ENDPOINT_DISABLED = "webhook.endpoint.disabled"
QUOTA_WARNING = "quota.warning"
QUOTA_EXCEEDED = "quota.exceeded"
NOTIFICATION_NEW = "notification.new"
QUEUE_PAUSED = "queue.paused"
QUEUE_RESUMED = "queue.resumed"
QUEUE_PRIORITY_CHANGED = "queue.priority_changed"
PR_CREATED = "pr.created"
PR_UPDATED = "pr.updated"
VALIDATION_STARTED = "validation.started"
VALIDATION_COMPLETED = "validation.completed"
PING = "ping"

# Every type the organization stream carries, in a stable order (documented in the README).
ORG_EVENT_TYPES: tuple[str, ...] = (
    *JOB_STATUS_TYPES.values(),
    *JOB_EVENT_TYPES.values(),
    ENDPOINT_DISABLED,
    QUOTA_WARNING,
    QUOTA_EXCEEDED,
    QUEUE_PAUSED,
    QUEUE_RESUMED,
    QUEUE_PRIORITY_CHANGED,
    PR_CREATED,
    PR_UPDATED,
    VALIDATION_STARTED,
    VALIDATION_COMPLETED,
    NOTIFICATION_NEW,
)
# What a webhook endpoint may subscribe to: everything but one user's notifications.
WEBHOOK_EVENT_TYPES: tuple[str, ...] = tuple(t for t in ORG_EVENT_TYPES if t != NOTIFICATION_NEW)
# Frequent events: at most one delivery per job and target every THROTTLE_S (the payload is the
# job as it is then, so a skipped one loses nothing the next one or the final one does not carry).
THROTTLED = frozenset({"job.progress", "job.log", "job.output"})
THROTTLE_S = 0.5

# A job's own webhook (`webhook_events_filter`, Replicate's names) → organization types.
JOB_WEBHOOK_FILTERS: dict[str, frozenset[str]] = {
    "start": frozenset({"job.started"}),
    "output": frozenset({"job.output"}),
    "logs": frozenset({"job.log"}),
    "completed": frozenset({"job.succeeded", "job.failed", "job.cancelled"}),
}


def job_event_type(event: dict[str, Any]) -> str:
    """The organization type of a job event payload (`jobs/events.py`)."""
    if event["type"] == EventType.STATUS:
        return JOB_STATUS_TYPES[event["data"]["status"]]
    return JOB_EVENT_TYPES[event["type"]]


def matches(patterns: Iterable[str], type_: str) -> bool:
    return any(fnmatchcase(type_, pattern) for pattern in patterns)


def unknown_patterns(patterns: Iterable[str], known: Iterable[str]) -> list[str]:
    """The patterns that match none of `known` (a typo such as `jobs.*`)."""
    known = tuple(known)
    return [p for p in patterns if not any(fnmatchcase(t, p) for t in known)]

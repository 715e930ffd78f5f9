"""The job lifecycle as one transition table: what may follow what, and the event it records."""

from __future__ import annotations

from enum import StrEnum


class JobStatus(StrEnum):
    QUEUED = "queued"
    RUNNING = "running"
    SUCCEEDED = "succeeded"
    FAILED = "failed"
    CANCELLED = "cancelled"

    @property
    def is_terminal(self) -> bool:
        return self in TERMINAL


TERMINAL = frozenset({JobStatus.SUCCEEDED, JobStatus.FAILED, JobStatus.CANCELLED})

# (from, to) -> the reason recorded in the status event.
TRANSITIONS: dict[tuple[JobStatus, JobStatus], str] = {
    (JobStatus.QUEUED, JobStatus.RUNNING): "claimed by a worker",
    (JobStatus.QUEUED, JobStatus.CANCELLED): "cancelled while queued",
    (JobStatus.RUNNING, JobStatus.SUCCEEDED): "finished",
    (JobStatus.RUNNING, JobStatus.FAILED): "failed",
    (JobStatus.RUNNING, JobStatus.CANCELLED): "cancelled while running",
    (JobStatus.RUNNING, JobStatus.QUEUED): "returned to the queue for another attempt",
}


class InvalidTransition(Exception):
    def __init__(self, current: JobStatus, target: JobStatus) -> None:
        super().__init__(f"a {current} job cannot become {target}")
        self.current = current
        self.target = target


def check_transition(current: str, target: JobStatus) -> str:
    """The reason to record for `current → target`. Raises InvalidTransition if not allowed."""
    reason = TRANSITIONS.get((JobStatus(current), target))
    if reason is None:
        raise InvalidTransition(JobStatus(current), target)
    return reason

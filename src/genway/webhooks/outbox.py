"""Webhook deliveries are written in the transaction that records their event: a hook run just
before every commit (`Database.before_commit`) looks at the events the transaction is about to
publish, finds the targets that want them (the organization's enabled endpoints whose
`event_types` match, and a job's own `webhook`), and inserts one delivery row per target. So an
event is delivered if and only if it was committed, whatever process dies afterwards.

The lookups are cached per process so a commit that concerns no webhook costs no statement: the
organization's endpoints (dropped when any endpoint changes, as authentication's caches are, and
after a second at most) and each job's own webhook (fixed when the job is created, noted by the
transaction that creates it)."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Table, insert, select, text
from sqlalchemy.orm import Session

from genway.db import PENDING_EVENTS, Database, on_commit, utcnow
from genway.jobs.models import Job
from genway.jobs.schemas import JobResponse
from genway.orgevents.types import (
    JOB_WEBHOOK_FILTERS,
    NOTIFICATION_NEW,
    THROTTLE_S,
    THROTTLED,
    job_event_type,
    matches,
)
from genway.webhooks.models import WebhookDelivery, WebhookEndpoint

deliveries: Table = WebhookDelivery.__table__  # type: ignore[assignment]
JOB_WEBHOOKS = "genway_job_webhooks"  # session.info: {job id: (url, filter) | None}
ENDPOINTS_MAX_AGE_S = 1.0
JOB_CACHE_SIZE = 50_000
THROTTLE_MEMORY = 10_000
WAKE_CHANNEL = "genway_webhooks_queued"

JobWebhook = tuple[str, frozenset[str]] | None  # (url, organization types it wants)
# A delivery to write: (event, its organization type, endpoint id, or a job's own URL).
Wanted = tuple[dict[str, Any], str, int | None, str | None]


@dataclass(frozen=True)
class EndpointRef:
    id: int
    patterns: tuple[str, ...]


def note_job_webhook(
    session: Session | Any, job_id: int, url: str | None, filters: Iterable[str] | None
) -> None:
    """Tell the outbox a job's own webhook (the transaction that creates the job knows it)."""
    session.info.setdefault(JOB_WEBHOOKS, {})[job_id] = job_webhook(url, filters)


def job_webhook(url: str | None, filters: Iterable[str] | None) -> JobWebhook:
    if url is None:
        return None
    names = filters if filters is not None else JOB_WEBHOOK_FILTERS
    return url, frozenset(t for name in names for t in JOB_WEBHOOK_FILTERS[name])


def message_id(event: dict[str, Any]) -> str:
    """`webhook-id`: the same for an event on every endpoint and every retry."""
    if "job_id" in event:
        return f"msg_j{event['id']}"
    return f"msg_o{event['org_event_id']}"


def event_type(event: dict[str, Any]) -> str:
    return job_event_type(event) if "job_id" in event else str(event["type"])


class Outbox:
    def __init__(self, database: Database) -> None:
        self.database = database
        self._endpoints: dict[int, tuple[float, int, list[EndpointRef]]] = {}
        self._jobs: OrderedDict[int, JobWebhook] = OrderedDict()
        self._last_sent: dict[tuple[int | str, int, str], float] = {}

    def install(self) -> None:
        self.database.before_commit.append(self.before_commit)

    def uninstall(self) -> None:
        self.database.before_commit.remove(self.before_commit)

    def before_commit(self, session: Session) -> None:
        noted: dict[int, JobWebhook] = session.info.pop(JOB_WEBHOOKS, {})
        for job_id, hook in noted.items():
            self._remember(job_id, hook)
        events: list[dict[str, Any]] = session.info.get(PENDING_EVENTS, [])
        if not events:
            return
        endpoints = self._org_endpoints(session, {event["org_id"] for event in events})
        jobs = {event["job_id"] for event in events if "job_id" in event}
        hooks = self._job_webhooks(session, jobs) if jobs else {}
        if not any(endpoints.values()) and not any(hooks.values()):
            return
        wanted = self._targets(events, endpoints, hooks)
        if wanted:
            self._insert(session, wanted)

    def _targets(
        self,
        events: list[dict[str, Any]],
        endpoints: dict[int, list[EndpointRef]],
        hooks: dict[int, JobWebhook],
    ) -> list[Wanted]:
        """Every delivery the events call for."""
        now = time.monotonic()
        wanted: list[Wanted] = []
        for event in events:
            type_ = event_type(event)
            if type_ == NOTIFICATION_NEW:
                continue  # one user's, not the organization's
            job_id = event.get("job_id")
            for endpoint in endpoints.get(event["org_id"], ()):
                if matches(endpoint.patterns, type_) and self._due(endpoint.id, job_id, type_, now):
                    wanted.append((event, type_, endpoint.id, None))
            hook = hooks.get(job_id) if job_id is not None else None
            if hook is not None and type_ in hook[1] and self._due(hook[0], job_id, type_, now):
                wanted.append((event, type_, None, hook[0]))
            if job_id is not None and type_ in ("job.succeeded", "job.failed", "job.cancelled"):
                self._forget_throttle(job_id)
        return wanted

    def _due(self, target: int | str, job_id: int | None, type_: str, now: float) -> bool:
        """Frequent job events go out at most every THROTTLE_S per job and target."""
        if job_id is None or type_ not in THROTTLED:
            return True
        key = (target, job_id, type_)
        if now - self._last_sent.get(key, -THROTTLE_S) < THROTTLE_S:
            return False
        if len(self._last_sent) >= THROTTLE_MEMORY:  # jobs that ended in another process
            self._last_sent = {k: t for k, t in self._last_sent.items() if now - t < THROTTLE_S}
        self._last_sent[key] = now
        return True

    def _forget_throttle(self, job_id: int) -> None:
        if self._last_sent:
            for key in [k for k in self._last_sent if k[1] == job_id]:
                del self._last_sent[key]

    def _insert(self, session: Session, wanted: list[Wanted]) -> None:
        job_ids = {event["job_id"] for event, *_ in wanted if "job_id" in event}
        snapshots: dict[int, dict[str, Any]] = {}
        if job_ids:
            session.flush()  # pending ORM changes first: the read below refreshes those objects
            rows = session.scalars(
                select(Job).where(Job.id.in_(job_ids)).execution_options(populate_existing=True)
            )
            snapshots = {
                job.id: JobResponse.model_validate(job).model_dump(mode="json") for job in rows
            }
        now = utcnow()
        rows_out = []
        for event, type_, endpoint_id, url in wanted:
            job_id = event.get("job_id")
            data = snapshots.get(job_id) if job_id is not None else event["data"]
            if data is None:
                continue  # the job is gone (deleted with its organization)
            rows_out.append(
                {
                    "org_id": event["org_id"],
                    "endpoint_id": endpoint_id,
                    "job_id": job_id,
                    "url": url,
                    "message_id": message_id(event),
                    "event_type": type_,
                    "payload": {"type": type_, "timestamp": event["created_at"], "data": data},
                    "status": "pending",
                    "attempts": 0,
                    "next_attempt_at": now,
                    "created_at": now,
                }
            )
        if not rows_out:
            return
        session.execute(insert(deliveries), rows_out)
        on_commit(session, deliveries=True)
        if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
            session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": WAKE_CHANNEL})

    def _org_endpoints(self, session: Session, org_ids: set[int]) -> dict[int, list[EndpointRef]]:
        generation = self.database.auth_generation
        now = time.monotonic()
        found: dict[int, list[EndpointRef]] = {}
        missing = []
        for org_id in org_ids:
            cached = self._endpoints.get(org_id)
            if cached and cached[1] == generation and now - cached[0] < ENDPOINTS_MAX_AGE_S:
                found[org_id] = cached[2]
            else:
                missing.append(org_id)
        if missing:
            loaded: dict[int, list[EndpointRef]] = {org_id: [] for org_id in missing}
            rows = session.execute(
                select(WebhookEndpoint.id, WebhookEndpoint.org_id, WebhookEndpoint.event_types)
                .where(WebhookEndpoint.org_id.in_(missing), WebhookEndpoint.enabled.is_(True))
                .order_by(WebhookEndpoint.id)
            )
            for endpoint_id, org_id, patterns in rows:
                loaded[org_id].append(EndpointRef(endpoint_id, tuple(patterns)))
            for org_id, refs in loaded.items():
                self._endpoints[org_id] = (now, generation, refs)
            found.update(loaded)
        return found

    def _job_webhooks(self, session: Session, job_ids: set[int]) -> dict[int, JobWebhook]:
        found: dict[int, JobWebhook] = {}
        missing = []
        for job_id in job_ids:
            if job_id in self._jobs:
                found[job_id] = self._jobs[job_id]
            else:
                missing.append(job_id)
        if missing:
            rows = session.execute(
                select(Job.id, Job.webhook, Job.webhook_events).where(Job.id.in_(missing))
            )
            for job_id, url, filters in rows:
                found[job_id] = job_webhook(url, filters)
                self._remember(job_id, found[job_id])
        return found

    def _remember(self, job_id: int, hook: JobWebhook) -> None:
        self._jobs[job_id] = hook
        if len(self._jobs) > JOB_CACHE_SIZE:
            self._jobs.popitem(last=False)

"""An organization's event stream: its jobs' events (`job_events`) and its own (`org_events`),
replayed after a cursor, then live.

The cursor is `<job event id>.<organization event id>`: the newest of each kind the client has
been sent (the two kinds are numbered apart). Replay reads both tables after it, each in id
order, the two interleaved by time;
live events come from the fan-out. An event meant for one user (`notification.new`) reaches only
that user's streams."""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import itertools
import re
from collections import OrderedDict, deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, or_, select

from genway.db import Database
from genway.errors import InvalidInput
from genway.jobs.events import event_payload
from genway.jobs.models import Job, JobEvent
from genway.kit import fastjson
from genway.orgevents.emit import org_payload
from genway.orgevents.models import OrgEvent
from genway.orgevents.types import ORG_EVENT_TYPES, job_event_type, matches, unknown_patterns
from genway.realtime.broadcast import Broadcaster

CURSOR = re.compile(r"^(\d{1,19})\.(\d{1,19})$")
REPLAY_BATCH = 500
SEEN_MEMORY = 4096
KEEPALIVE = None
Wire = tuple[dict[str, Any], str]  # a message and its JSON


@dataclass(frozen=True)
class Cursor:
    job_event: int
    org_event: int

    def __str__(self) -> str:
        return f"{self.job_event}.{self.org_event}"


def parse_cursor(value: str | None) -> Cursor | None:
    """Raises InvalidInput for a cursor this API did not issue."""
    if value is None or not value.strip():
        return None
    found = CURSOR.match(value.strip())
    if found is None:
        raise InvalidInput(
            "Invalid event cursor: expected '<n>.<m>', the `id` of an event of this stream"
        )
    return Cursor(int(found.group(1)), int(found.group(2)))


def parse_types(value: str | None) -> tuple[str, ...]:
    """`types=job.*,quota.warning` → patterns. Raises InvalidInput naming unknown ones."""
    if value is None or not value.strip():
        return ("*",)
    patterns = tuple(p.strip() for p in value.split(",") if p.strip())
    unknown = unknown_patterns(patterns, ORG_EVENT_TYPES)
    if unknown:
        raise InvalidInput(
            f"Unknown event types: {', '.join(unknown)}; known: {', '.join(ORG_EVENT_TYPES)}"
        )
    return patterns


_WIRE: OrderedDict[tuple[int, str], tuple[dict[str, Any], str]] = OrderedDict()
WIRE_CACHE = 256


def wire_text(event: dict[str, Any], message: dict[str, Any]) -> str:
    """`message` as JSON, encoded once for every subscriber that sends the same event at the
    same cursor (the fan-out hands each of them the same event object)."""
    key = (id(event), message["id"])
    cached = _WIRE.get(key)
    if cached is not None and cached[0] is event:
        return cached[1]
    text = fastjson.dumps_text(message)
    _WIRE[key] = (event, text)  # holding the event keeps its id from being reused meanwhile
    if len(_WIRE) > WIRE_CACHE:
        _WIRE.popitem(last=False)
    return text


def stream_message(event: dict[str, Any], cursor: Cursor) -> dict[str, Any]:
    """What a subscriber receives: the event under its organization type, with the cursor to
    resume after it as `id`."""
    message: dict[str, Any] = {"id": str(cursor)}
    if "job_id" in event:
        message.update(
            type=job_event_type(event),
            job_id=event["job_id"],
            seq=event["seq"],
            data=event["data"],
        )
    else:
        message.update(type=event["type"], data=event["data"])
    message["created_at"] = event["created_at"]
    return message


class OrgStream:
    def __init__(
        self,
        database: Database,
        broadcaster: Broadcaster,
        org_id: int,
        user_id: int | None,
        types: Sequence[str] = ("*",),
    ) -> None:
        self.database = database
        self.broadcaster = broadcaster
        self.org_id = org_id
        self.user_id = user_id
        self.types = tuple(types)
        self.position = Cursor(0, 0)
        self._seen: deque[tuple[str, int]] = deque(maxlen=SEEN_MEMORY)
        self._seen_set: set[tuple[str, int]] = set()

    async def events(
        self, after: Cursor | None, *, keepalive_s: float = 15.0
    ) -> AsyncIterator[Wire | None]:
        """Messages with their JSON (None: nothing happened for `keepalive_s`) until the
        consumer stops."""
        async with self.broadcaster.subscribe_org(self.org_id) as live:
            if after is None:
                self.position = await self._now()
            else:
                self.position = after
                async for message in self._replay():
                    yield message
            while True:
                event = None
                if not live.empty():  # a burst: no timer, no wait
                    event = live.get_nowait()
                else:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(keepalive_s):  # no Task, unlike wait_for
                            event = await live.get()
                if live.missed:  # the fan-out dropped some: read them from the database
                    live.missed = False
                    async for message in self._replay():
                        yield message
                if event is None:
                    yield KEEPALIVE
                    continue
                admitted = self._admit(event)
                if admitted is not None:
                    yield admitted, wire_text(event, admitted)

    def _admit(self, event: dict[str, Any]) -> dict[str, Any] | None:
        """The message for a live or replayed event, or None when it is not for this
        subscriber or was already sent."""
        if event.get("user_id") not in (None, self.user_id):
            return None
        key = ("j", event["id"]) if "job_id" in event else ("o", event["org_event_id"])
        if key in self._seen_set:
            return None
        self._remember(key)
        if key[0] == "j":
            self.position = Cursor(max(self.position.job_event, key[1]), self.position.org_event)
            type_ = job_event_type(event)
        else:
            self.position = Cursor(self.position.job_event, max(self.position.org_event, key[1]))
            type_ = event["type"]
        if not matches(self.types, type_):
            return None
        return stream_message(event, self.position)

    def _remember(self, key: tuple[str, int]) -> None:
        if len(self._seen) == self._seen.maxlen:
            self._seen_set.discard(self._seen[0])
        self._seen.append(key)
        self._seen_set.add(key)

    async def _now(self) -> Cursor:
        async with self.database.sessions() as session:
            job_event = await session.scalar(select(func.max(JobEvent.id)))
            org_event = await session.scalar(select(func.max(OrgEvent.id)))
        return Cursor(job_event or 0, org_event or 0)

    async def page(self, after: Cursor, limit: int) -> list[dict[str, Any]]:
        """Up to `limit` messages after `after`, oldest first (`position` is where the next
        page starts)."""
        self.position = after
        found: list[dict[str, Any]] = []
        while len(found) < limit:
            batch = await self._read_after(self.position)
            for event in batch:
                message = self._admit(event)
                if message is not None:
                    found.append(message)
                if len(found) == limit:
                    break
            if len(batch) < REPLAY_BATCH:
                break
        return found

    async def _replay(self) -> AsyncIterator[Wire]:
        while True:
            batch = await self._read_after(self.position)
            if not batch:
                return
            for event in batch:
                message = self._admit(event)
                if message is not None:
                    yield message, fastjson.dumps_text(message)
            if len(batch) < REPLAY_BATCH:
                return

    async def _read_after(self, cursor: Cursor) -> list[dict[str, Any]]:
        async with self.database.sessions() as session:
            job_rows = (
                await session.scalars(
                    select(JobEvent)
                    .join(Job, Job.id == JobEvent.job_id)
                    .where(Job.org_id == self.org_id, JobEvent.id > cursor.job_event)
                    .order_by(JobEvent.id)
                    .limit(REPLAY_BATCH)
                )
            ).all()
            org_rows = (
                await session.scalars(
                    select(OrgEvent)
                    .where(
                        OrgEvent.org_id == self.org_id,
                        OrgEvent.id > cursor.org_event,
                        or_(OrgEvent.user_id.is_(None), OrgEvent.user_id == self.user_id),
                    )
                    .order_by(OrgEvent.id)
                    .limit(REPLAY_BATCH)
                )
            ).all()
        job_events = [event_payload(row, self.org_id) for row in job_rows]
        org_events = [
            org_payload(row.id, row.org_id, row.type, row.data, row.created_at, row.user_id)
            for row in org_rows
        ]
        # Each kind stays in id order (the cursor moves past the highest id sent, so a lower id
        # sent after it would be skipped by the next page); the two are interleaved by time.
        merged = heapq.merge(job_events, org_events, key=lambda e: e["created_at"])
        return list(itertools.islice(merged, REPLAY_BATCH))

"""Sending webhook deliveries, in every worker process: claim the due rows (a lease, so a dead
process's claims are taken over), POST each signed payload (10 s timeout, no redirects, to the
addresses checked just now), and record every attempt with its outcome in batches. Failures on
the network, 408, 429 (its `Retry-After` honoured) and 5xx are retried on the configured schedule
with jitter; any other answer is final. A delivery still failing after the last retry fails, and
its endpoint, if it had no success meanwhile, is disabled and its admins told."""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from email.utils import parsedate_to_datetime
from typing import Any

import httpx
import structlog
from sqlalchemy import Row, Table, and_, bindparam, insert, or_, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from genway import __version__
from genway.config import Settings
from genway.db import Database, utcnow
from genway.kit import fastjson
from genway.kit.crypto import SecretBox
from genway.queue.wakeup import Wakeup
from genway.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from genway.webhooks.outbox import WAKE_CHANNEL
from genway.webhooks.secrets import org_signing_secrets, signing_secrets
from genway.webhooks.signing import sign
from genway.webhooks.targets import TargetPolicy, TargetRefused, parse_target, resolve

log = structlog.get_logger("genway.webhooks")

deliveries: Table = WebhookDelivery.__table__  # type: ignore[assignment]
attempts_table: Table = WebhookAttempt.__table__  # type: ignore[assignment]
RETRYABLE = frozenset({408, 429})
EXCERPT_BYTES = 1000
LEASE_MARGIN_S = 5.0
MAX_RETRY_AFTER_S = 24 * 3600.0
CONNECTIONS_PER_POOL = 8
_RECORD_OUTCOME = (
    update(deliveries)
    .where(deliveries.c.id == bindparam("b_id"))
    .values(
        status=bindparam("b_status"),
        locked_until=None,
        last_status_code=bindparam("b_status_code"),
        last_error=bindparam("b_error"),
        next_attempt_at=bindparam("b_next"),
        finished_at=bindparam("b_finished"),
    )
)


@dataclass(frozen=True)
class Outcome:
    delivery: Row[Any]
    at: datetime
    latency_ms: int
    status_code: int | None = None
    excerpt: str | None = None
    error: str | None = None
    retry_after_s: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def retryable(self) -> bool:
        if self.status_code is None:
            return self.error is not None and not self.error.startswith("refused:")
        return self.status_code in RETRYABLE or self.status_code >= 500


@dataclass(frozen=True)
class Destination:
    url: str
    secrets: list[str]
    disabled: str | None = None  # why nothing is sent


class WebhookSender:
    def __init__(
        self,
        database: Database,
        settings: Settings,
        *,
        on_endpoint_disabled: Callable[[AsyncSession, WebhookEndpoint], Any] | None = None,
    ) -> None:
        self.database = database
        self.box: SecretBox = settings.secret_box
        self.policy: TargetPolicy = settings.webhook_policy
        self.timeout_s = settings.webhook_timeout_s
        self.schedule = list(settings.webhook_retry_schedule_s)
        self.concurrency = settings.webhook_concurrency
        self.poll_s = settings.webhook_poll_s
        self.on_endpoint_disabled = on_endpoint_disabled
        self.wakeup = Wakeup(settings.resolved_database_url, channel=WAKE_CHANNEL)
        self._inflight: set[asyncio.Task[None]] = set()
        self._outcomes: list[Outcome] = []
        self._outcome_ready = asyncio.Event()
        self._stopping = asyncio.Event()

    def wake(self) -> None:
        self.wakeup.notify()

    def stop(self) -> None:
        self._stopping.set()
        self.wakeup.notify()

    async def run(self) -> None:
        await self.wakeup.start()
        # Several small connection pools rather than one large: httpcore scans its whole pool
        # for every request, which at 32 connections costs as much as the rest of a delivery.
        clients = [
            httpx.AsyncClient(
                follow_redirects=False,
                timeout=self.timeout_s,
                trust_env=False,
                limits=httpx.Limits(max_connections=CONNECTIONS_PER_POOL),
                headers={"user-agent": f"Genway-Webhooks/{__version__}"},
            )
            for _ in range(-(-self.concurrency // CONNECTIONS_PER_POOL))
        ]
        writer = asyncio.create_task(self._write_outcomes(), name="webhook-outcomes")
        try:
            await self._claim_loop(clients)
        finally:
            if self._inflight:
                await asyncio.wait(self._inflight, timeout=self.timeout_s + 1)
            writer.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await writer
            await self._flush_outcomes()
            for client in clients:
                await client.aclose()
            await self.wakeup.stop()

    async def _claim_loop(self, clients: list[httpx.AsyncClient]) -> None:
        # Claim when a quarter of the slots are free (or all are idle): larger claims, fewer
        # transactions per delivery.
        refill_at = max(1, self.concurrency // 4)
        while not self._stopping.is_set():
            free = self.concurrency - len(self._inflight)
            if free < refill_at and self._inflight:
                await asyncio.wait(self._inflight, return_when=asyncio.FIRST_COMPLETED)
                continue
            try:
                batch = await self._claim(free)
                destinations = await self._destinations(batch) if batch else {}
            except Exception as exc:  # the database is away: try again later
                log.error("webhook_claim_failed", error=str(exc))
                await self.wakeup.wait(self.poll_s)
                continue
            if not batch:
                await self.wakeup.wait(self.poll_s)
                continue
            for row in batch:
                client = clients[row.id % len(clients)]
                task = asyncio.create_task(self._send(client, row, destinations[row.id]))
                self._inflight.add(task)
                task.add_done_callback(self._inflight.discard)

    async def _claim(self, limit: int) -> list[Row[Any]]:
        now = utcnow()
        due = (
            select(deliveries.c.id)
            .where(
                deliveries.c.status == DeliveryStatus.PENDING,
                deliveries.c.next_attempt_at <= now,
                or_(deliveries.c.locked_until.is_(None), deliveries.c.locked_until < now),
            )
            .order_by(deliveries.c.next_attempt_at, deliveries.c.id)
            .limit(limit)
            .with_for_update(skip_locked=True)
        )
        lease = now + timedelta(seconds=self.timeout_s + LEASE_MARGIN_S)
        async with self.database.transaction() as session:
            rows = await session.execute(
                update(deliveries)
                .where(deliveries.c.id.in_(due.scalar_subquery()))
                .values(locked_until=lease, attempts=deliveries.c.attempts + 1)
                .returning(*deliveries.c)
            )
            return list(rows.all())

    async def _destinations(self, batch: list[Row[Any]]) -> dict[int, Destination]:
        """Each delivery's URL and signing secrets, read now (a rotation or a disabled endpoint
        counts from the next attempt on)."""
        endpoint_ids = {row.endpoint_id for row in batch if row.endpoint_id is not None}
        org_ids = {row.org_id for row in batch if row.endpoint_id is None}
        async with self.database.transaction() as session:
            endpoints = {
                endpoint.id: endpoint
                for endpoint in await session.scalars(
                    select(WebhookEndpoint).where(WebhookEndpoint.id.in_(endpoint_ids))
                )
            }
            org_secrets = {
                org_id: await org_signing_secrets(session, self.box, org_id) for org_id in org_ids
            }
        found = {}
        for row in batch:
            if row.endpoint_id is None:
                found[row.id] = Destination(row.url, org_secrets[row.org_id])
                continue
            endpoint = endpoints.get(row.endpoint_id)
            if endpoint is None:
                found[row.id] = Destination("", [], disabled="the endpoint was deleted")
            elif not endpoint.enabled and row.event_type != "ping":
                found[row.id] = Destination(endpoint.url, [], disabled="the endpoint is disabled")
            else:
                found[row.id] = Destination(endpoint.url, signing_secrets(self.box, endpoint))
        return found

    async def _send(self, client: httpx.AsyncClient, row: Row[Any], to: Destination) -> None:
        started, at = time.monotonic(), utcnow()
        try:
            if to.disabled is not None:
                outcome = Outcome(row, at, 0, error=f"refused: {to.disabled}")
            else:
                outcome = await self._post(client, row, to, started, at)
        except Exception as exc:  # never lose the claim's outcome
            outcome = Outcome(row, at, _ms(started), error=f"{type(exc).__name__}: {exc}")
        self._outcomes.append(outcome)
        self._outcome_ready.set()

    async def _post(
        self,
        client: httpx.AsyncClient,
        row: Row[Any],
        to: Destination,
        started: float,
        at: datetime,
    ) -> Outcome:
        try:
            target = parse_target(to.url, self.policy)
            addresses = await resolve(target, self.policy)
        except TargetRefused as exc:
            return Outcome(row, at, _ms(started), error=f"refused: {exc.detail}")
        body = fastjson.dumps_text(row.payload)
        headers = {
            "content-type": "application/json",
            "webhook-id": row.message_id,
            "webhook-timestamp": str(int(at.timestamp())),
            "webhook-signature": sign(to.secrets, row.message_id, at, body),
            "host": target.host if target.port in (80, 443) else f"{target.host}:{target.port}",
        }
        # Connect to the address just checked (not to whatever the name resolves to next).
        pinned = httpx.URL(to.url).copy_with(host=str(addresses[0]))
        extensions = {"sni_hostname": target.host} if target.scheme == "https" else {}
        try:
            async with client.stream(
                "POST", pinned, content=body, headers=headers, extensions=extensions
            ) as response:
                excerpt = await _excerpt(response.aiter_bytes())
        except httpx.HTTPError as exc:
            message = str(exc) or type(exc).__name__
            return Outcome(row, at, _ms(started), error=f"{type(exc).__name__}: {message}")
        return Outcome(
            row,
            at,
            _ms(started),
            status_code=response.status_code,
            excerpt=excerpt,
            retry_after_s=_retry_after(response.headers.get("retry-after"), at),
        )

    async def _write_outcomes(self) -> None:
        while True:
            await self._outcome_ready.wait()
            try:
                await self._flush_outcomes()
            except Exception as exc:  # the leases expire and the deliveries are tried again
                log.error("webhook_outcomes_failed", error=str(exc))
                await asyncio.sleep(self.poll_s)

    async def _flush_outcomes(self) -> None:
        outcomes, self._outcomes = self._outcomes, []
        self._outcome_ready.clear()
        if not outcomes:
            return
        now = utcnow()
        async with self.database.transaction() as session:
            await session.execute(
                insert(attempts_table),
                [
                    {
                        "delivery_id": o.delivery.id,
                        "attempted_at": o.at,
                        "status_code": o.status_code,
                        "latency_ms": o.latency_ms,
                        "response_excerpt": o.excerpt,
                        "error": o.error[:1000] if o.error else None,
                    }
                    for o in outcomes
                ],
            )
            states = [self._next_state(outcome, now) for outcome in outcomes]
            await session.execute(_RECORD_OUTCOME, states)  # one executemany for the batch
            exhausted = [
                outcome
                for outcome, state in zip(outcomes, states, strict=True)
                if state["b_status"] == DeliveryStatus.FAILED and outcome.retryable
            ]
            for outcome in exhausted:
                await self._maybe_disable(session, outcome.delivery)

    def _next_state(self, outcome: Outcome, now: datetime) -> dict[str, Any]:
        """The parameters of `_RECORD_OUTCOME` for one outcome."""
        error = outcome.error[:1000] if outcome.error else None
        state: dict[str, Any] = {
            "b_id": outcome.delivery.id,
            "b_status_code": outcome.status_code,
            "b_error": error,
            "b_next": now,
            "b_finished": now,
        }
        tries = outcome.delivery.attempts
        if outcome.succeeded:
            return {**state, "b_status": DeliveryStatus.SUCCEEDED}
        if outcome.retryable and tries <= len(self.schedule):
            delay = self.schedule[tries - 1] * random.uniform(0.8, 1.2)  # noqa: S311
            if outcome.retry_after_s is not None:
                delay = outcome.retry_after_s
            next_at = now + timedelta(seconds=delay)
            return {
                **state,
                "b_status": DeliveryStatus.PENDING,
                "b_next": next_at,
                "b_finished": None,
            }
        if outcome.status_code is not None and not outcome.retryable and error is None:
            state["b_error"] = f"HTTP {outcome.status_code} is final (only 408, 429, 5xx retry)"
        return {**state, "b_status": DeliveryStatus.FAILED}

    async def _maybe_disable(self, session: AsyncSession, delivery: Row[Any]) -> None:
        """Retries ran out: disable the endpoint unless it took a delivery since this one began."""
        if delivery.endpoint_id is None:
            return
        succeeded_since = await session.scalar(
            select(deliveries.c.id)
            .where(
                and_(
                    deliveries.c.endpoint_id == delivery.endpoint_id,
                    deliveries.c.status == DeliveryStatus.SUCCEEDED,
                    deliveries.c.finished_at >= delivery.created_at,
                )
            )
            .limit(1)
        )
        if succeeded_since is not None:
            return
        endpoint = await session.get(WebhookEndpoint, delivery.endpoint_id)
        if endpoint is None or not endpoint.enabled:
            return
        endpoint.enabled = False
        endpoint.disabled_reason = (
            f"Deliveries failed for the whole retry schedule (last: {delivery.message_id})"
        )
        await session.flush()
        log.warning("webhook_endpoint_disabled", endpoint_id=endpoint.id, org_id=endpoint.org_id)
        if self.on_endpoint_disabled is not None:
            await self.on_endpoint_disabled(session, endpoint)


async def _excerpt(chunks: AsyncIterator[bytes]) -> str:
    kept = b""
    async for chunk in chunks:
        kept += chunk[: EXCERPT_BYTES - len(kept)]
        if len(kept) >= EXCERPT_BYTES:
            break
    return kept.decode("utf-8", errors="replace")


def _retry_after(value: str | None, now: datetime) -> float | None:
    """`Retry-After` in seconds (a number or an HTTP date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = (parsedate_to_datetime(value) - now).total_seconds()
        except (TypeError, ValueError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


def _ms(started: float) -> int:
    return int((time.monotonic() - started) * 1000)

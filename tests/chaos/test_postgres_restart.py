"""Chaos: PostgreSQL restarts while 4 clients submit and poll jobs through `genway serve` and
2 `genway worker` processes run them, all on a private PostgreSQL (never the shared one).

What must hold: requests during the outage get a 503 with `Retry-After` (never a 500, never a
hang past the client's timeout); once the database is back everything works again without
restarting any Genway process (pools reconnect, LISTEN is re-established on every process, each
worker runs jobs again); every acknowledged job runs to success, and no job ever runs twice at
the same time: a job whose lease lapsed during the outage was stopped by its worker before
another could take it."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select, text

from genway.jobs.models import Job
from genway.migrate import migrate
from tests.chaos.load import AFTER, BEFORE, OUTAGE, RECOVERING, REQUEST_TIMEOUT_S, Load
from tests.chaos.servers import PrivatePostgres
from tests.chaos.span_executor import SPAN_FILE_ENV, Span, overlapping, read_spans, span_job
from tests.jobs.processes import (
    ApiProcess,
    Processes,
    db_events,
    new_tenant,
    open_database,
    status_counts,
    wait_until,
)
from tests.support import Tenant

pytestmark = [pytest.mark.chaos, pytest.mark.slow]

LEASE_S = 2.0
REAPER_INTERVAL_S = 0.5
CLIENTS = 4
WORKER_CONCURRENCY = 3
OUTAGE_S = 4.0  # longer than a lease: the leases of running jobs lapse meanwhile
SHORT_JOB = span_job(seconds=0.3, steps=3)
LONG_JOB = span_job(seconds=8.0, steps=16)  # outlasts the outage
LONG_JOBS = 2
ACKNOWLEDGED_BEFORE = 8
ANSWERS_AFTER = 40
BURST_JOB = span_job(seconds=1.0, steps=2)
BURST = 8  # more jobs than one worker has slots: every worker must take some
LISTEN = 'LISTEN "genway_jobs_queued"'
PROCESSES = 3  # the API and two workers, each LISTENing
ENDED = ("succeeded", "failed", "cancelled")


async def listening_sessions(url: str) -> int:
    async with open_database(url) as database, database.sessions() as session:
        count = await session.scalar(
            select(func.count()).select_from(text("pg_stat_activity")).where(text("query = :q")),
            {"q": LISTEN},
        )
    return int(count or 0)


async def health(api: ApiProcess) -> tuple[int, dict[str, Any]]:
    async with api.client(timeout=REQUEST_TIMEOUT_S) as http:
        response = await http.get("/health")
    return response.status_code, response.json()


@dataclass
class Outage:
    """What the test did and saw around the outage."""

    health_during: tuple[int, dict[str, Any]]
    long_ids: list[int]
    burst_ids: list[int]
    seconds: float
    back_after_s: float


async def restart_under_load(
    pg: PrivatePostgres, stop_mode: str, api: ApiProcess, load: Load, span_file: Path
) -> Outage:
    """Long jobs and clients running; stop PostgreSQL for OUTAGE_S, start it again, wait for
    `/health`, then submit a burst and let the clients go on for a while."""
    async with api.client(timeout=REQUEST_TIMEOUT_S) as http:
        long_ids = [await load.submit(http, f"long-{n}", LONG_JOB) for n in range(LONG_JOBS)]
    clients = [
        asyncio.create_task(load.client(api, f"client-{c}", SHORT_JOB)) for c in range(CLIENTS)
    ]
    try:

        async def long_jobs_running() -> bool | None:
            running = {s.job_id for s in read_spans(span_file) if s.end is None}
            enough = len(load.acknowledged()) >= ACKNOWLEDGED_BEFORE + LONG_JOBS
            return True if enough and set(long_ids) <= running else None

        await wait_until(long_jobs_running, timeout=30, what="the long jobs to run")
        load.phase = OUTAGE
        stopped_at = time.monotonic()
        await asyncio.to_thread(pg.stop, stop_mode)
        health_during = await health(api)
        await asyncio.sleep(OUTAGE_S)

        load.phase = RECOVERING
        await asyncio.to_thread(pg.start)
        started_at = time.monotonic()

        async def healthy() -> bool | None:
            return True if (await health(api))[0] == 200 else None

        await wait_until(healthy, timeout=30, what="/health to answer 200 again")
        load.phase = AFTER
        back_at = time.monotonic()
        async with api.client(timeout=REQUEST_TIMEOUT_S) as http:
            burst_ids = [await load.submit(http, f"burst-{n}", BURST_JOB) for n in range(BURST)]

        async def enough_after() -> bool | None:
            return True if len(load.in_phase(AFTER)) >= ANSWERS_AFTER else None

        await wait_until(enough_after, timeout=30, what="requests after the recovery")
    finally:
        load.stop.set()
        results = await asyncio.gather(*clients, return_exceptions=True)
    assert not [r for r in results if isinstance(r, BaseException)], results
    return Outage(health_during, long_ids, burst_ids, started_at - stopped_at, back_at - started_at)


@dataclass
class Stored:
    """What the database holds once every acknowledged job has ended."""

    job_ids: set[int]
    counts: dict[str, int]
    attempts: dict[int, int]
    statuses: dict[int, list[str]]


async def settle(url: str, tenant: Tenant, ids: set[int], long_ids: list[int]) -> Stored:
    async with open_database(url) as database:

        async def all_ended() -> dict[str, int] | None:
            counts = await status_counts(database, ids)
            return counts if sum(counts.get(s, 0) for s in ENDED) == len(ids) else None

        counts = await wait_until(
            all_ended, timeout=60, interval=0.25, what="every acknowledged job to end"
        )
        async with database.sessions() as session:
            stored = set(await session.scalars(select(Job.id).where(Job.org_id == tenant.org_id)))
            rows = await session.execute(select(Job.id, Job.attempts).where(Job.id.in_(long_ids)))
            attempts = {job_id: n for job_id, n in rows.tuples()}
        statuses = {
            job_id: [
                e["data"]["status"]
                for e in await db_events(database, tenant, job_id)
                if e["type"] == "status"
            ]
            for job_id in long_ids
        }
    return Stored(stored, counts, attempts, statuses)


@pytest.mark.parametrize("stop_mode", ["fast", "immediate"])
async def test_postgres_restart_under_load(stop_mode: str, tmp_path: Path) -> None:
    started = time.monotonic()
    span_file = tmp_path / "spans.txt"
    env = {"GENWAY_EXECUTOR_MODULES": "tests.chaos.span_executor", SPAN_FILE_ENV: str(span_file)}
    with PrivatePostgres() as pg:
        await migrate(pg.url)
        tenant = await new_tenant(pg.url)
        with Processes(
            tmp_path / "processes",
            pg.url,
            lease_s=LEASE_S,
            reaper_interval_s=REAPER_INTERVAL_S,
            extra_env=env,
        ) as processes:
            api = processes.api("api")
            workers = [
                processes.worker(f"worker-{n}", concurrency=WORKER_CONCURRENCY) for n in (1, 2)
            ]
            await asyncio.gather(api.wait_ready(), *(w.wait_started() for w in workers))

            async def all_listening() -> bool | None:
                return True if await listening_sessions(pg.url) == PROCESSES else None

            await wait_until(all_listening, timeout=30, what="every process to LISTEN")
            ready_s = time.monotonic() - started

            load = Load(tenant)
            outage = await restart_under_load(pg, stop_mode, api, load, span_file)
            ids = set(load.acknowledged().values())
            stored = await settle(pg.url, tenant, ids, outage.long_ids)
            listening = await listening_sessions(pg.url)
            spans = read_spans(span_file)
            print(
                f"\n[PostgreSQL stopped with -m {stop_mode} for {outage.seconds:.1f} s] "
                f"{len(ids)} jobs acknowledged ({len(load.replayed)} on a retry), {len(spans)} "
                f"executions; /health 200 {outage.back_after_s:.1f} s after the restart; test "
                f"{time.monotonic() - started:.1f} s (processes ready {ready_s:.1f} s)\n"
                f"{load.summary()}\n{describe_runs(spans, outage.long_ids)}"
            )

            # During the outage: 503 with Retry-After and a clear body, never a 500 or a hang.
            status, body = outage.health_during
            assert status == 503 and body["checks"]["database"]["status"] == "down", body
            unexpected = [a for a in load.answers if a.status not in (200, 201, 503)]
            assert not unexpected, unexpected[:5]
            assert {a.method for a in load.in_phase(OUTAGE) if a.status == 503} == {"GET", "POST"}
            for answer in (a for a in load.answers if a.status == 503):
                assert answer.retry_after is not None, answer
                assert answer.body["status_code"] == 503, answer
                assert "database is temporarily unavailable" in answer.body["message"], answer
            # Before it, and once /health says it is back, every request succeeds (no stale
            # pooled connection answers for the restart).
            calm = [a for a in load.answers if a.ended_in == BEFORE or a.phase == AFTER]
            assert all(a.status in (200, 201) for a in calm), [a for a in calm if a.status >= 300]

            # Recovered without restarting anything, LISTENing again on every process, every
            # worker running jobs again.
            for process in (api, *workers):
                process.ensure_running()
                assert len(process.pids) == 1, f"{process.name} was restarted"
            assert listening == PROCESSES, f"{listening} processes LISTEN again, not {PROCESSES}"
            ran_burst = {s.pid for s in spans if s.job_id in outage.burst_ids}
            assert ran_burst == {w.pid for w in workers}, f"workers that ran jobs: {ran_burst}"

            # Nothing lost, nothing extra, nothing run twice at once.
            lost, extra = ids - stored.job_ids, stored.job_ids - ids
            assert not lost and not extra, f"lost {lost}, never acknowledged {extra}"
            assert stored.counts == {"succeeded": len(ids)}, stored.counts
            assert all(s.end is not None for s in spans), [s for s in spans if s.end is None]
            assert not overlapping(spans), overlapping(spans)[:5]
            assert {s.job_id for s in spans if s.outcome == "ok"} == ids

            # The long jobs were running when the database went away: their workers stopped
            # them as their leases lapsed, and they ran again once it was back.
            for job_id in outage.long_ids:
                runs = [s.outcome for s in spans if s.job_id == job_id]
                assert runs == ["cancelled", "ok"], (job_id, runs)
                assert stored.attempts[job_id] == 2, stored.attempts
                assert stored.statuses[job_id] == [
                    "queued",
                    "running",
                    "queued",
                    "running",
                    "succeeded",
                ], stored.statuses


def describe_runs(spans: list[Span], job_ids: list[int]) -> str:
    lines = []
    for job_id in job_ids:
        runs = [s for s in spans if s.job_id == job_id]
        base = runs[0].start if runs else 0
        parts = [
            f"attempt {s.attempt} in pid {s.pid} {(s.start - base) / 1e9:.2f}-"
            f"{((s.end or s.start) - base) / 1e9:.2f} s: {s.outcome}"
            for s in runs
        ]
        lines.append(f"  long job {job_id}: " + "; ".join(parts))
    attempts = Counter(len([s for s in spans if s.job_id == j]) for j in {s.job_id for s in spans})
    lines.append(f"  executions per job: {dict(sorted(attempts.items()))}")
    return "\n".join(lines)

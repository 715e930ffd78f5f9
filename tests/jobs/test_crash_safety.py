"""Crash safety with real processes, on SQLite and PostgreSQL: a worker killed with SIGKILL
mid-job loses its lease and the job runs again elsewhere; an API killed with SIGKILL while
clients submit loses no job it acknowledged."""

from __future__ import annotations

import asyncio
import contextlib
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx
from sqlalchemy import select

from genway.jobs.models import Job
from tests.jobs.processes import (
    STARTUP_TIMEOUT_S,
    ApiProcess,
    Processes,
    count_job,
    db_events,
    event_counts,
    jobs_path,
    list_all_jobs,
    new_tenant,
    open_database,
    submit,
    wait_job,
    wait_until,
)
from tests.support import Tenant

LEASE_S = 2.0
REAPER_INTERVAL_S = 0.5
JOB_S = 4.0


async def test_job_of_a_killed_worker_runs_again_on_another_worker(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    with Processes(
        tmp_path / "processes",
        database_url,
        lease_s=LEASE_S,
        reaper_interval_s=REAPER_INTERVAL_S,
    ) as processes:
        first = processes.worker("worker-1", concurrency=1)
        await first.wait_started()
        job = await submit(client, tenant, count_job(seconds=JOB_S, steps=7))
        job_id = job["id"]

        await wait_job(client, tenant, job_id, {"running"}, timeout=60)

        async def first_attempt_started() -> bool | None:  # the executor itself is running
            return True if any(e.job_id == job_id for e in processes.executions()) else None

        await wait_until(first_attempt_started, timeout=30, what="the first execution")
        first.kill()
        killed = time.monotonic()

        second = processes.worker("worker-2", concurrency=1)
        bound = STARTUP_TIMEOUT_S + LEASE_S + REAPER_INTERVAL_S + JOB_S  # includes start-up
        done = await wait_job(client, tenant, job_id, timeout=bound)
        print(
            f"[{database_url.split(':')[0]}] job {job_id} {done['status']} "
            f"{time.monotonic() - killed:.1f} s after SIGKILL "
            f"(lease {LEASE_S:g} s + reaper {REAPER_INTERVAL_S:g} s + job {JOB_S:g} s "
            "+ worker start-up)"
        )

        assert done["status"] == "succeeded", (done, processes.logs())
        assert done["attempts"] == 2, done
        assert done["result"]["attempt"] == 2 and done["result"]["pid"] == second.pid
        runs = [(e.attempt, e.pid) for e in processes.executions() if e.job_id == job_id]
        assert runs == [(1, first.pid), (2, second.pid)]

        async with open_database(database_url) as database:
            events = await db_events(database, tenant, job_id)
        assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
        statuses = [e["data"] for e in events if e["type"] == "status"]
        assert [s["status"] for s in statuses] == [
            "queued",
            "running",
            "queued",
            "running",
            "succeeded",
        ]
        assert statuses[2]["error"]["code"] == "worker_lost"
        assert [s.get("attempt") for s in statuses if s["status"] == "running"] == [1, 2]


TOTAL_JOBS = 500
CLIENTS = 20
KILL_AFTER = 100  # acknowledged jobs before the API is killed


@dataclass
class SubmissionLog:
    created: dict[int, int] = field(default_factory=dict)  # job index -> id, answered 201
    replayed: dict[int, int] = field(default_factory=dict)  # job index -> id, answered 200
    in_doubt: set[int] = field(default_factory=set)  # indexes whose request hit a dead API
    unexpected: list[tuple[int, int, str]] = field(default_factory=list)
    transport_errors: int = 0
    in_flight: int = 0
    in_flight_at_kill: int = -1
    acknowledged_at_kill: int = -1


def idempotency_key(index: int) -> str:
    return f"crash-{index:04d}"


async def submit_through_a_crash(api: ApiProcess, tenant: Tenant) -> SubmissionLog:
    """CLIENTS concurrent clients submit TOTAL_JOBS jobs; once KILL_AFTER are acknowledged the
    API gets SIGKILL and is restarted. Clients retry a failed request with the same
    Idempotency-Key until the API answers."""
    log = SubmissionLog()
    threshold = asyncio.Event()
    restarted = asyncio.Event()

    async def client_loop(indexes: range) -> None:
        async with api.client(timeout=30) as http:
            for index in indexes:
                headers = {**tenant.headers, "Idempotency-Key": idempotency_key(index)}
                deadline = time.monotonic() + STARTUP_TIMEOUT_S + 30
                while True:
                    log.in_flight += 1
                    try:
                        response = await http.post(
                            jobs_path(tenant.org_id), json=count_job(), headers=headers
                        )
                    except httpx.TransportError:
                        log.transport_errors += 1
                        log.in_doubt.add(index)
                        assert time.monotonic() < deadline, f"job {index}: API never came back"
                        await asyncio.sleep(0.05 if restarted.is_set() else 0.2)
                        continue
                    finally:
                        log.in_flight -= 1
                    break
                if response.status_code == 201:
                    log.created[index] = response.json()["id"]
                    if len(log.created) >= KILL_AFTER:
                        threshold.set()
                elif response.status_code == 200:
                    log.replayed[index] = response.json()["id"]
                else:
                    log.unexpected.append((index, response.status_code, response.text[:300]))

    async def crash_and_restart() -> None:
        await threshold.wait()
        log.in_flight_at_kill = log.in_flight
        log.acknowledged_at_kill = len(log.created)
        api.kill()
        await asyncio.sleep(0.3)
        api.start()
        await api.wait_ready()
        restarted.set()

    clients = [client_loop(range(c, TOTAL_JOBS, CLIENTS)) for c in range(CLIENTS)]
    controller = asyncio.create_task(crash_and_restart())
    try:
        await asyncio.gather(*clients)
        await asyncio.wait_for(controller, timeout=STARTUP_TIMEOUT_S)
    finally:
        if not controller.done():
            controller.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await controller
    return log


async def test_killed_api_loses_no_acknowledged_job(database_url: str, tmp_path: Path) -> None:
    tenant = await new_tenant(database_url)
    with Processes(tmp_path / "processes", database_url) as processes:
        api = processes.api("api")
        await api.wait_ready()
        started = time.monotonic()
        log = await submit_through_a_crash(api, tenant)
        print(
            f"[{database_url.split(':')[0]}] {TOTAL_JOBS} jobs in {time.monotonic() - started:.1f}"
            f" s; SIGKILL after {log.acknowledged_at_kill} acknowledged with "
            f"{log.in_flight_at_kill} requests in flight; {log.transport_errors} transport "
            f"errors; {len(log.in_doubt)} in doubt, of which {len(log.replayed)} turned out "
            "committed (200 on retry)"
        )
        assert api.running and len(api.pids) == 2, "the API was not killed and restarted"
        assert log.transport_errors > 0, "no request met the dead API"
        assert not log.unexpected, log.unexpected[:5]
        assert set(log.replayed) <= log.in_doubt, "a replay for a request that never failed"
        assert len(log.created) + len(log.replayed) == TOTAL_JOBS
        assert len(set(log.created.values())) == len(log.created), "two 201s, one job id"

        # Every acknowledged job exists, once, with its own key and its queued event.
        async with open_database(database_url) as database, database.sessions() as session:
            rows = (
                await session.execute(
                    select(Job.id, Job.idempotency_key, Job.status, Job.last_event_seq).where(
                        Job.org_id == tenant.org_id
                    )
                )
            ).all()
            events = await event_counts(database, [row.id for row in rows])
        by_id = {row.id: row for row in rows}
        missing = {i: j for i, j in log.created.items() if j not in by_id}
        assert not missing, f"acknowledged (201) jobs missing after the crash: {missing}"
        for index, job_id in (log.created | log.replayed).items():
            assert by_id[job_id].idempotency_key == idempotency_key(index)
        assert len(rows) == TOTAL_JOBS, "a job was stored twice or lost"
        assert {row.status for row in rows} == {"queued"}
        assert all(row.last_event_seq == 1 and events.get(row.id) == 1 for row in rows)

        # ... and the restarted API serves them.
        async with api.client() as http:
            listed = {job["id"] for job in await list_all_jobs(http, tenant)}
        assert set(log.created.values()) <= listed
        assert len(listed) == TOTAL_JOBS

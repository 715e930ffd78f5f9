"""Guarantees a mutation audit found untested: a worker stopped by SIGTERM returns its running
jobs to the queue with their attempt refunded; a job that ignores cancellation is stopped once
the cancel grace is over; PostgreSQL's claim rechecks an organization's last free slot under its
lock, so claimers running at once never start more than the organization's limit."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from genway.config import Settings
from genway.db import Database
from genway.jobs.models import Job
from genway.orgs.models import Organization
from genway.queue.claim import claim_jobs
from genway.worker.context import JobContext
from genway.worker.registry import executor
from genway.worker.runner import WorkerOptions, running_worker
from genway.worker.service import Runtime, build_worker
from tests.jobs.processes import (
    Processes,
    count_job,
    db_events,
    jobs_path,
    open_database,
    submit,
    wait_job,
    wait_until,
)
from tests.support import Tenant

IGNORES_CANCEL = "test.ignores-cancellation"
CLAIM_KINDS = [f"test.claim-race-{n}" for n in range(6)]


@executor(IGNORES_CANCEL, description="Sleeps a minute without ever looking at cancellation")
async def ignores_cancellation(job: Job, ctx: JobContext) -> dict[str, Any]:
    await asyncio.sleep(60)  # a plain sleep: neither ctx.sleep nor ctx.cancelled
    return {}


async def _noop(job: Job, ctx: JobContext) -> dict[str, Any]:
    return {}


for _kind in CLAIM_KINDS:
    executor(_kind, description="Claimed directly by the claim race test, never run")(_noop)


async def test_sigterm_returns_running_jobs_to_the_queue_with_the_attempt_refunded(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    with Processes(
        tmp_path / "processes", database_url, extra_env={"GENWAY_SHUTDOWN_GRACE_S": "0.2"}
    ) as processes:
        first = processes.worker("worker-1", concurrency=1)
        await first.wait_started()
        job_id = (await submit(client, tenant, count_job(seconds=3, steps=6)))["id"]

        async def executing() -> bool | None:
            return True if any(e.job_id == job_id for e in processes.executions()) else None

        await wait_until(executing, timeout=60, what="the first execution")
        assert first.popen is not None
        first.popen.send_signal(signal.SIGTERM)

        async def exited() -> int | None:
            return None if first.popen is None else first.popen.poll()

        assert await wait_until(exited, timeout=60, what="worker-1 to exit") == 0
        returned = await wait_job(client, tenant, job_id, {"queued", "failed", "succeeded"})
        assert returned["status"] == "queued", (returned, processes.logs())
        assert returned["attempts"] == 0  # the shutdown was not the job's fault

        second = processes.worker("worker-2", concurrency=1)
        done = await wait_job(client, tenant, job_id, timeout=120)
        assert done["status"] == "succeeded", (done, processes.logs())
        assert done["attempts"] == 1
        assert done["result"]["pid"] == second.pid and done["result"]["attempt"] == 1
        runs = [(e.attempt, e.pid) for e in processes.executions() if e.job_id == job_id]
        assert runs == [(1, first.pid), (1, second.pid)]

        async with open_database(database_url) as database:
            events = await db_events(database, tenant, job_id)
        statuses = [e["data"] for e in events if e["type"] == "status"]
        assert [s["status"] for s in statuses] == [
            "queued",
            "running",
            "queued",
            "running",
            "succeeded",
        ]
        assert "worker shut down" in statuses[2]["reason"] and statuses[2].get("error") is None


async def test_a_job_ignoring_cancellation_is_stopped_after_the_grace(
    app: FastAPI, settings: Settings, db: Database, tenant: Tenant, client: httpx.AsyncClient
) -> None:
    grace_s = 0.5
    created = await client.post(
        jobs_path(tenant.org_id),
        json={"kind": IGNORES_CANCEL, "input": {}},
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    job_id = created.json()["id"]
    state = app.state
    runtime = Runtime(state.db, state.broadcaster, state.wakeup, state.request_meter)
    options = WorkerOptions(
        concurrency=1,
        idle_poll_s=0.05,
        cancel_poll_s=0.1,
        cancel_grace_s=grace_s,
        shutdown_grace_s=0.2,
    )
    # The executor sleeps 60 s: only the worker's hard stop can end it within the guard.
    async with asyncio.timeout(30), running_worker(build_worker(settings, runtime, options)):
        await wait_job(client, tenant, job_id, {"running"}, timeout=20)
        asked = time.monotonic()
        cancel = await client.post(
            f"{jobs_path(tenant.org_id, job_id)}/cancel", headers=tenant.headers
        )
        assert cancel.status_code == 200 and cancel.json()["cancel_requested"] is True
        final = await wait_job(client, tenant, job_id, timeout=20)
        stopped_after = time.monotonic() - asked
    assert final["status"] == "cancelled", final
    assert stopped_after >= grace_s  # the executor had its grace period first


async def test_concurrent_postgres_claims_never_exceed_an_organizations_limit(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, database_url: str
) -> None:
    if not database_url.startswith("postgresql"):
        pytest.skip("PostgreSQL only: SQLite runs one writer at a time")
    limit = 2
    async with db.transaction() as session:
        await session.execute(
            update(Organization)
            .where(Organization.id == tenant.org_id)
            .values(overrides={"max_concurrent_jobs": limit})
        )
    for kind in CLAIM_KINDS:
        await submit(client, tenant, {"kind": kind, "input": {}})
    release = asyncio.Event()

    async def claimer(kind: str) -> list[Job]:
        # One kind per claimer, so no two of them choose the same job (the row lock would
        # settle that case anyway): only the organization's limit is contended. Each claim's
        # transaction stays open until `release`, so every claimer decides before any commits.
        async with db.transaction() as session:
            claimed = await claim_jobs(session, f"claimer-{kind}", 30.0, [kind], 1)
            await release.wait()
        return claimed

    tasks = [asyncio.create_task(claimer(kind)) for kind in CLAIM_KINDS]
    try:
        await asyncio.sleep(1.0)  # each claimer has claimed, or waits for the organization
        release.set()
        async with asyncio.timeout(30):
            claims = await asyncio.gather(*tasks)
    finally:
        for task in tasks:
            task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*tasks, return_exceptions=True)
    assert sum(len(claimed) for claimed in claims) == limit
    async with db.sessions() as session:
        running = await session.scalar(
            select(func.count())
            .select_from(Job)
            .where(Job.org_id == tenant.org_id, Job.status == "running")
        )
    assert running == limit

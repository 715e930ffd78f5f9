"""The job core's guarantees: the transition table is exactly what is applied, batched claims
keep an organization's concurrency limit under concurrent workers, and no client hears of a
job's end before the row says so."""

from __future__ import annotations

import asyncio
import contextlib
import json
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import select, update

from genway.config import Settings
from genway.db import Database
from genway.jobs.lifecycle import TRANSITIONS, transition
from genway.jobs.models import Job, JobEvent
from genway.jobs.states import InvalidTransition, JobStatus
from genway.orgs.models import Organization
from genway.worker.context import JobContext
from genway.worker.registry import executor
from genway.worker.runner import WorkerOptions, running_worker
from genway.worker.service import Runtime, build_worker
from tests.support import Tenant

CONCURRENCY_PROBE = "test.concurrency-probe"
in_flight: dict[int, int] = {}
peaks: dict[int, int] = {}


@executor(CONCURRENCY_PROBE, description="Counts how many jobs of its organization run at once")
async def concurrency_probe(job: Job, ctx: JobContext) -> dict[str, Any]:
    in_flight[job.org_id] = in_flight.get(job.org_id, 0) + 1
    peaks[job.org_id] = max(peaks.get(job.org_id, 0), in_flight[job.org_id])
    try:
        await asyncio.sleep(0.05)
    finally:
        in_flight[job.org_id] -= 1
    return {}


ALLOWED = {
    ("queued", "running"),
    ("queued", "cancelled"),
    ("running", "succeeded"),
    ("running", "failed"),
    ("running", "cancelled"),
    ("running", "queued"),
}


def jobs_url(tenant: Tenant) -> str:
    return f"/v1/organizations/{tenant.org_id}/jobs"


async def submit(
    client: httpx.AsyncClient, tenant: Tenant, seconds: float, kind: str = "diagnostic.sleep"
) -> int:
    body = {"kind": kind, "input": {"seconds": seconds} if kind == "diagnostic.sleep" else {}}
    response = await client.post(jobs_url(tenant), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


@contextlib.asynccontextmanager
async def workers(app: FastAPI, settings: Settings, count: int, concurrency: int) -> Any:
    state = app.state
    runtime = Runtime(state.db, state.broadcaster, state.wakeup, state.request_meter)
    options = WorkerOptions(concurrency=concurrency, idle_poll_s=0.05, lease_s=10)
    async with contextlib.AsyncExitStack() as stack:
        for _ in range(count):
            await stack.enter_async_context(
                running_worker(build_worker(settings, runtime, options))
            )
        yield


def test_the_table_holds_exactly_the_lifecycle():
    assert {(s.value, t.value) for s, t in TRANSITIONS} == ALLOWED


@pytest.mark.parametrize("source", list(JobStatus))
@pytest.mark.parametrize("target", list(JobStatus))
async def test_each_allowed_transition_and_no_other_is_applied(
    db: Database, tenant: Tenant, client: httpx.AsyncClient, source: JobStatus, target: JobStatus
):
    job_id = await submit(client, tenant, 0)
    async with db.transaction() as session:
        await session.execute(update(Job).where(Job.id == job_id).values(status=source))
    if (source.value, target.value) not in ALLOWED:
        with pytest.raises(InvalidTransition):
            async with db.transaction() as session:
                await transition(session, source, target, Job.id == job_id)
        return
    async with db.transaction() as session:
        rows = await transition(session, source, target, Job.id == job_id, why="test")
        # The fence: a second application finds no job in `source` any more.
        again = await transition(session, source, target, Job.id == job_id)
    assert [row.id for row in rows] == [job_id] and list(again) == []
    async with db.sessions() as session:
        job = await session.get(Job, job_id)
        events = (
            await session.scalars(
                select(JobEvent).where(JobEvent.job_id == job_id).order_by(JobEvent.seq)
            )
        ).all()
    assert job is not None and job.status == target and job.last_event_seq == 2
    assert [e.seq for e in events] == [1, 2]
    assert events[-1].data["status"] == target and events[-1].data["reason"].endswith(": test")
    if target.is_terminal:
        assert job.finished_at is not None
    if target == JobStatus.RUNNING:
        assert job.started_at is not None and job.attempts == 1


async def test_batch_claims_never_exceed_an_organizations_limit(
    app: FastAPI, settings: Settings, db: Database, tenant: Tenant, client: httpx.AsyncClient
):
    limit = 3
    async with db.transaction() as session:
        await session.execute(
            update(Organization)
            .where(Organization.id == tenant.org_id)
            .values(overrides={"max_concurrent_jobs": limit})
        )
    ids = [await submit(client, tenant, 0, CONCURRENCY_PROBE) for _ in range(40)]
    async with workers(app, settings, count=4, concurrency=4):
        for _ in range(1000):
            async with db.sessions() as session:
                rows = (await session.execute(select(Job.status).where(Job.id.in_(ids)))).all()
            if [row.status for row in rows].count("succeeded") == len(ids):
                break
            await asyncio.sleep(0.02)
    assert [row.status for row in rows].count("succeeded") == len(ids)
    # Counted inside the executors (one process): each starts after its claim committed and
    # ends before its finish is committed, so this is the exact number running at once.
    assert 1 < peaks[tenant.org_id] <= limit


async def test_no_client_hears_of_an_end_before_the_row_says_so(
    app: FastAPI, settings: Settings, tenant: Tenant, client: httpx.AsyncClient
):
    ids = [await submit(client, tenant, 0) for _ in range(30)]
    checked: list[tuple[int, str]] = []

    async def follow(job_id: int) -> None:
        url = f"{jobs_url(tenant)}/{job_id}/events"
        async with client.stream("GET", url, headers=tenant.headers) as stream:
            async for line in stream.aiter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                status = event["data"].get("status")
                if event["type"] == "status" and status in ("succeeded", "failed", "cancelled"):
                    row = await client.get(f"{jobs_url(tenant)}/{job_id}", headers=tenant.headers)
                    assert row.json()["status"] == status, (event, row.json())
                    checked.append((job_id, status))
                    return

    followers = [asyncio.create_task(follow(job_id)) for job_id in ids]
    await asyncio.sleep(0.2)  # every stream is subscribed before any job runs
    async with workers(app, settings, count=2, concurrency=8):
        async with asyncio.timeout(60):
            await asyncio.gather(*followers)
    assert sorted(checked) == sorted((job_id, "succeeded") for job_id in ids)


async def test_a_full_worker_stops_and_returns_its_jobs_to_the_queue(
    app: FastAPI, settings: Settings, db: Database, tenant: Tenant, client: httpx.AsyncClient
):
    job_id = await submit(client, tenant, 60)
    state = app.state
    runtime = Runtime(state.db, state.broadcaster, state.wakeup, state.request_meter)
    options = WorkerOptions(concurrency=1, idle_poll_s=0.05, shutdown_grace_s=0.2)
    async with asyncio.timeout(30):  # a hang guard, not a timing assertion
        async with running_worker(build_worker(settings, runtime, options)):
            for _ in range(400):  # every slot busy: the claim loop waits for one to free up
                async with db.sessions() as session:
                    job = await session.get(Job, job_id)
                if job is not None and job.status == "running":
                    break
                await asyncio.sleep(0.025)
    async with db.sessions() as session:
        job = await session.get(Job, job_id)
    assert job is not None and job.status == "queued" and job.attempts == 0

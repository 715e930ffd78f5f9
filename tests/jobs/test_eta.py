"""When will my job run: `estimated_start_at` of queued jobs and `estimated_finish_at` of running
ones, through the HTTP API with the embedded worker and history made by real runs."""

from __future__ import annotations

import asyncio
import statistics
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest

from genway.config import Settings
from genway.db import Database
from genway.jobs.eta import Demand, Queued, org_slots, play_queue
from genway.jobs.models import Job
from genway.orgs.models import Tier
from tests.support import Tenant, make_tenant

HISTORY_S = 3.0  # long enough that a job read just after it started is not yet overdue
TOLERANCE = timedelta(milliseconds=20)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "embedded_worker": True,
            "worker_concurrency": 8,
            "eta_cache_s": 0.0,  # every read sees the history just made
            "retry_base_s": 20.0,  # a retried job waits 10-30 s: long enough to read it
            "shutdown_grace_s": 0.2,
        }
    )


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def url(tenant: Tenant, suffix: str = "") -> str:
    return f"/v1/organizations/{tenant.org_id}/jobs{suffix}"


async def submit(client: httpx.AsyncClient, tenant: Tenant, seconds: float, **input_: Any) -> int:
    body = {"kind": "diagnostic.sleep", "input": {"seconds": seconds, **input_}}
    response = await client.post(url(tenant), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return int(response.json()["id"])


async def read(client: httpx.AsyncClient, tenant: Tenant, job_id: int) -> dict[str, Any]:
    response = await client.get(url(tenant, f"/{job_id}"), headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def wait_until(
    client: httpx.AsyncClient, tenant: Tenant, job_id: int, status: str, attempts: int = 0
) -> dict[str, Any]:
    for _ in range(1200):
        job = await read(client, tenant, job_id)
        if job["status"] == status and job["attempts"] >= attempts:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never became {status}: {job}")


async def history(
    client: httpx.AsyncClient, tenant: Tenant, seconds: float, count: int
) -> list[float]:
    """Run `count` jobs of `seconds` to success; their run times (started → finished)."""
    ids = [await submit(client, tenant, seconds) for _ in range(count)]
    done = [await wait_until(client, tenant, job_id, "succeeded") for job_id in ids]
    return [(at(j["finished_at"]) - at(j["started_at"])).total_seconds() for j in done]


async def cancel(client: httpx.AsyncClient, tenant: Tenant, ids: list[int]) -> None:
    for job_id in ids:
        await client.post(url(tenant, f"/{job_id}/cancel"), headers=tenant.headers)


async def test_queued_job_waits_for_its_organizations_slots(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
):
    typical = timedelta(seconds=statistics.median(await history(client, tenant, HISTORY_S, 5)))
    basic = await make_tenant(db, tier=Tier.BASIC)  # 2 jobs at a time, no history of its own
    blockers = [await submit(client, basic, 60) for _ in range(2)]
    started = [at((await wait_until(client, basic, b, "running"))["started_at"]) for b in blockers]
    waiting = [await submit(client, basic, 60) for _ in range(4)]  # K = 3 ahead of the last
    try:
        page = await client.get(url(basic), headers=basic.headers)
        read_by = datetime.now(UTC)
        by_id = {job["id"]: job for job in page.json()["items"]}
        starts = [at(by_id[job_id]["estimated_start_at"]) for job_id in waiting]
        assert starts == sorted(starts)
        # Slots free as the blockers reach the typical time; ceil(3 / 2) = 2 run times later
        # the last job starts (the second slot to free, after one more job).
        last = max(started) + 2 * typical
        assert starts[-1] >= last - TOLERANCE
        assert starts[-1] <= max(last, read_by + timedelta(seconds=1) + typical) + TOLERANCE
        assert starts[0] <= max(min(started) + typical, read_by + timedelta(seconds=1)) + TOLERANCE
        for blocker, began in zip(blockers, started, strict=True):
            job = by_id[blocker]
            assert job["estimated_start_at"] is None
            assert at(job["estimated_finish_at"]) >= began + typical - TOLERANCE
        one = await read(client, basic, waiting[-1])
        assert one["queue_position"] == 4 and one["estimated_finish_at"] is None
        assert at(one["estimated_start_at"]) >= last - TOLERANCE
        legacy = await client.get(f"/api/v1/jobs/{waiting[-1]}", headers=basic.headers)
        assert at(legacy.json()["estimated_start_at"]) >= last - TOLERANCE
    finally:
        await cancel(client, basic, waiting + blockers)


async def test_running_job_finish_prefers_its_organizations_history(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: Database
):
    slow, _fast = await asyncio.gather(
        history(client, tenant, HISTORY_S, 5), history(client, other_tenant, 0.01, 7)
    )
    own = timedelta(seconds=statistics.median(slow))
    newcomer = await make_tenant(db)  # no history: every organization's (mostly fast) runs
    running = [await submit(client, org, 60) for org in (tenant, newcomer)]
    try:
        mine = await wait_until(client, tenant, running[0], "running")
        theirs = await wait_until(client, newcomer, running[1], "running")
        after = datetime.now(UTC)
        began = at(mine["started_at"])
        assert mine["estimated_start_at"] is None and mine["queue_position"] is None
        assert at(mine["estimated_finish_at"]) >= began + own - TOLERANCE
        assert at(mine["estimated_finish_at"]) <= max(
            began + own, after + timedelta(seconds=1) + TOLERANCE
        )
        # The newcomer's estimate comes from the fast majority: overdue at once, so "a moment
        # from now" (never in the past), sooner than the slow organization's would be.
        finish = at(theirs["estimated_finish_at"])
        assert at(theirs["started_at"]) + timedelta(seconds=1) - TOLERANCE <= finish
        assert finish <= after + timedelta(seconds=1) + TOLERANCE
        finished = (await client.get(url(tenant), headers=tenant.headers)).json()["items"][-1]
        assert finished["status"] == "succeeded"
        assert finished["estimated_start_at"] is None and finished["estimated_finish_at"] is None
    finally:
        await cancel(client, tenant, running[:1])
        await cancel(client, newcomer, running[1:])


async def test_job_waiting_for_run_after_starts_no_earlier(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
):
    job_id = await submit(client, tenant, 0, fail_attempts=1)
    try:
        job = await wait_until(client, tenant, job_id, "queued", attempts=1)
        async with db.transaction() as session:
            row = await session.get(Job, job_id)
            assert row is not None
            run_after = row.run_after
        assert run_after > datetime.now(UTC) + timedelta(seconds=5)  # the retry's back-off
        start = at(job["estimated_start_at"])
        assert run_after <= start <= run_after + TOLERANCE  # idle slots: due is what it waits for
    finally:
        await cancel(client, tenant, [job_id])


def test_the_queue_is_played_in_the_claims_order_once_due():
    free = [0.0]  # one slot, free now
    queue = [Queued(1, 0, -1.0, 2.0), Queued(2, 5, -1.0, 2.0), Queued(3, 9, 10.0, 1.0)]
    starts, next_free = play_queue(free, queue)
    assert starts == {2: 0.0, 1: 2.0, 3: 10.0}  # priority first; job 3 not before it is due
    assert next_free == 11.0


def test_an_organization_gets_its_fair_share_of_the_slots_within_its_limit():
    demand = Demand(slots=4, running=[], wanted={2: 1, 3: 10}, limits={1: None, 2: None})
    assert org_slots(demand, 1) == 2  # org 2 needs one slot; orgs 1 and 3 share the other 3
    assert org_slots(Demand(4, [], {2: 1, 3: 10}, {1: 1}), 1) == 1
    assert org_slots(Demand(4, [], {}, {1: None}), 1) == 4


async def test_a_paused_queue_gives_no_start_estimate_until_resumed(
    client: httpx.AsyncClient, tenant: Tenant
):
    queue = f"/v1/organizations/{tenant.org_id}/queue"
    paused = await client.post(f"{queue}/pause", headers=tenant.headers)
    assert paused.status_code in (200, 204), paused.text
    job_id = await submit(client, tenant, 0)
    try:
        held = await read(client, tenant, job_id)
        assert held["status"] == "queued" and held["estimated_start_at"] is None
        resumed = await client.post(f"{queue}/resume", headers=tenant.headers)
        assert resumed.status_code in (200, 204), resumed.text
        done = await wait_until(client, tenant, job_id, "succeeded")
        assert done["estimated_start_at"] is None and done["estimated_finish_at"] is None
    finally:
        await cancel(client, tenant, [job_id])

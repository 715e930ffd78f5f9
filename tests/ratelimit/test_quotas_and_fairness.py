"""Daily quotas refused at submission, per-organization concurrency (waiting, not refusing),
fair sharing of workers across organizations, and usage metering."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from fastapi import FastAPI

import tests.ratelimit.probe_executors  # noqa: F401  (registers the probe kind)
from genway.config import Settings
from genway.db import Database
from genway.orgs.models import Tier
from genway.worker.runner import WorkerOptions, running_worker
from genway.worker.service import Runtime, build_worker
from tests.ratelimit.probe_executors import IMAGE_PROBE
from tests.support import Tenant, make_tenant


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Free organizations may also create only 10 jobs a minute; lift that here so the daily
    # image quota (also 10) is what refuses the 11th.
    return settings.model_copy(
        update={"usage_flush_interval_s": 0.1, "tier_limits": {"free": {"jobs_per_minute": 100}}}
    )


def start_worker(app: FastAPI, settings: Settings, concurrency: int) -> Any:
    runtime = Runtime(
        app.state.db, app.state.broadcaster, app.state.wakeup, app.state.request_meter
    )
    worker = build_worker(
        settings, runtime, WorkerOptions(concurrency=concurrency, idle_poll_s=0.05)
    )
    return running_worker(worker)


async def jobs_of(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    page = await client.get(
        f"/v1/organizations/{tenant.org_id}/jobs", params={"limit": 100}, headers=tenant.headers
    )
    return list(page.json()["items"])


async def wait_until(predicate: Any, attempts: int = 400) -> None:
    for _ in range(attempts):
        if await predicate():
            return
        await asyncio.sleep(0.05)
    raise AssertionError("condition never became true")


async def test_free_orgs_eleventh_image_job_of_the_day_is_refused(
    client: httpx.AsyncClient, db: Database
):
    free = await make_tenant(db, tier=Tier.FREE)
    url = f"/v1/organizations/{free.org_id}/jobs"
    for _ in range(10):
        accepted = await client.post(url, json={"kind": IMAGE_PROBE}, headers=free.headers)
        assert accepted.status_code == 201
    refused = await client.post(url, json={"kind": IMAGE_PROBE}, headers=free.headers)
    assert refused.status_code == 429
    body = refused.json()
    assert body["quota"] == "images" and body["limit"] == 10 and body["used"] == 10
    assert body["resets_at"].endswith("T00:00:00Z") and "quota" in body["detail"]
    assert len(await jobs_of(client, free)) == 10  # the refused job was not stored
    other = await client.post(
        url, json={"kind": "diagnostic.sleep", "input": {"seconds": 0}}, headers=free.headers
    )
    assert other.status_code == 201  # kinds without a quota are unaffected
    usage = (
        await client.get(f"/v1/organizations/{free.org_id}/usage", headers=free.headers)
    ).json()
    assert usage["quotas"]["images"] == {
        "limit": 10,
        "used": 10,
        "remaining": 0,
        "resets_at": body["resets_at"],
    }


async def test_concurrent_submissions_cannot_exceed_the_quota(
    client: httpx.AsyncClient, db: Database
):
    free = await make_tenant(db, tier=Tier.FREE)
    url = f"/v1/organizations/{free.org_id}/jobs"
    await client.post(url, json={"kind": IMAGE_PROBE}, headers=free.headers)  # warm up
    responses = await asyncio.gather(
        *(client.post(url, json={"kind": IMAGE_PROBE}, headers=free.headers) for _ in range(9))
    )
    assert sorted(r.status_code for r in responses) == [201] * 9
    burst = await asyncio.gather(
        *(client.post(url, json={"kind": IMAGE_PROBE}, headers=free.headers) for _ in range(5))
    )
    assert [r.status_code for r in burst] == [429] * 5


async def test_second_concurrent_job_waits_and_starts_when_the_first_ends(
    app: FastAPI, client: httpx.AsyncClient, db: Database, settings: Settings
):
    free = await make_tenant(db, tier=Tier.FREE)
    url = f"/v1/organizations/{free.org_id}/jobs"
    first = (
        await client.post(
            url, json={"kind": "diagnostic.sleep", "input": {"seconds": 1}}, headers=free.headers
        )
    ).json()
    second = (
        await client.post(
            url, json={"kind": "diagnostic.sleep", "input": {"seconds": 0}}, headers=free.headers
        )
    ).json()
    async with start_worker(app, settings, concurrency=4):

        async def first_running() -> bool:
            job = (await client.get(f"{url}/{first['id']}", headers=free.headers)).json()
            return bool(job["status"] == "running")

        await wait_until(first_running)
        waiting = (await client.get(f"{url}/{second['id']}", headers=free.headers)).json()
        assert waiting["status"] == "queued"  # a free organization runs one job at a time

        async def both_done() -> bool:
            jobs = await jobs_of(client, free)
            return all(j["status"] == "succeeded" for j in jobs)

        await wait_until(both_done)
    jobs = {j["id"]: j for j in await jobs_of(client, free)}
    assert jobs[second["id"]]["started_at"] >= jobs[first["id"]]["finished_at"]


async def test_fair_share_across_organizations(
    app: FastAPI, client: httpx.AsyncClient, db: Database, settings: Settings
):
    busy = await make_tenant(db)
    quiet = await make_tenant(db)
    body = {"kind": "diagnostic.sleep", "input": {"seconds": 0.05}}
    semaphore = asyncio.Semaphore(16)

    async def submit(tenant: Tenant) -> None:
        async with semaphore:
            response = await client.post(
                f"/v1/organizations/{tenant.org_id}/jobs", json=body, headers=tenant.headers
            )
            assert response.status_code == 201

    await asyncio.gather(*(submit(busy) for _ in range(500)))
    await asyncio.gather(*(submit(quiet) for _ in range(5)))
    async with start_worker(app, settings, concurrency=2):

        async def quiet_done_and_ten_busy_finished() -> bool:
            jobs = await jobs_of(client, quiet)
            busy_page = await client.get(
                f"/v1/organizations/{busy.org_id}/jobs",
                params={"status": "succeeded", "limit": 10},
                headers=busy.headers,
            )
            return (
                all(j["status"] == "succeeded" for j in jobs)
                and len(busy_page.json()["items"]) >= 10
            )

        await wait_until(quiet_done_and_ten_busy_finished)
    async with db.sessions() as session:
        from sqlalchemy import select

        from genway.jobs.models import Job

        busy_finished = sorted(
            (
                await session.scalars(
                    select(Job.finished_at).where(
                        Job.org_id == busy.org_id, Job.finished_at.is_not(None)
                    )
                )
            ).all()
        )
        quiet_started = min(
            (await session.scalars(select(Job.started_at).where(Job.org_id == quiet.org_id))).all()
        )
    assert len(busy_finished) >= 10
    assert quiet_started < busy_finished[9]


async def test_usage_metering_counts_requests_jobs_and_compute(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, settings: Settings
):
    url = f"/v1/organizations/{tenant.org_id}/jobs"
    async with start_worker(app, settings, concurrency=2):
        ids = [
            (
                await client.post(
                    url,
                    json={"kind": "diagnostic.sleep", "input": {"seconds": 0.1}},
                    headers=tenant.headers,
                )
            ).json()["id"]
            for _ in range(3)
        ]

        async def all_done() -> bool:
            jobs = await jobs_of(client, tenant)
            return len(jobs) == 3 and all(j["status"] == "succeeded" for j in jobs)

        await wait_until(all_done)
    assert len(ids) == 3
    await asyncio.sleep(0.3)  # one flush interval for the request counters
    usage = (
        await client.get(f"/v1/organizations/{tenant.org_id}/usage", headers=tenant.headers)
    ).json()
    totals = usage["totals"]
    assert totals["jobs:diagnostic.sleep"] == 3
    assert totals["compute_ms"] >= 300
    assert totals["requests"] >= 4
    assert all(point["day"] == usage["to"] for point in usage["series"])
    bad = await client.get(
        f"/v1/organizations/{tenant.org_id}/usage",
        params={"from": "2026-02-01", "to": "2026-01-01"},
        headers=tenant.headers,
    )
    assert bad.status_code == 422

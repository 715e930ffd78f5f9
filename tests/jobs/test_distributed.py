"""Distributed mode, PostgreSQL and Redis only: two API processes and two worker processes share
one database and one Redis. Jobs run exactly once whichever API took them, a WebSocket on one API
sees every event of a job submitted through the other, and a cancel through one API stops a job
running in a worker process."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import select
from websockets.asyncio.client import connect

from genway.jobs.models import Job
from tests.conftest import PG_URL, REDIS_URL, _truncate, require_service
from tests.jobs.processes import (
    ApiProcess,
    Processes,
    WorkerProcess,
    count_job,
    db_events,
    get_job,
    jobs_path,
    new_tenant,
    open_database,
    read_sse,
    status_counts,
    submit,
    wait_job,
    wait_until,
)
from tests.support import Tenant

TOTAL_JOBS = 1000
CLIENTS = 20  # half of them on each API
WORKER_CONCURRENCY = 8


@dataclass
class Cluster:
    processes: Processes
    apis: list[ApiProcess]
    workers: list[WorkerProcess]
    tenant: Tenant
    database_url: str


@pytest.fixture(scope="module")
def cluster(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Cluster]:
    require_service(PG_URL, "database")
    redis_url = require_service(REDIS_URL, "redis")
    database_url: str = request.getfixturevalue("postgres_ready")
    asyncio.run(_truncate(database_url))
    tenant = asyncio.run(new_tenant(database_url))
    workdir: Path = tmp_path_factory.mktemp("cluster")
    # Cached API keys never expire by age here: only the Redis news of a revocation can end
    # them (test_a_key_revoked_through_one_api_is_refused_by_the_other).
    never = {"GENWAY_AUTH_CACHE_MAX_AGE_S": "86400"}
    with Processes(workdir, database_url, redis_url=redis_url, extra_env=never) as processes:
        apis = [processes.api(f"api-{n}") for n in (1, 2)]
        workers = [processes.worker(f"worker-{n}", concurrency=WORKER_CONCURRENCY) for n in (1, 2)]

        async def ready() -> None:
            await asyncio.gather(
                *(api.wait_ready() for api in apis), *(w.wait_started() for w in workers)
            )

        asyncio.run(ready())
        yield Cluster(processes, apis, workers, tenant, database_url)
        for process in (*apis, *workers):
            process.ensure_running()  # none of them died during the tests


async def test_thousand_jobs_through_two_apis_run_exactly_once(cluster: Cluster) -> None:
    tenant = cluster.tenant
    started = time.monotonic()

    async def client_loop(api: ApiProcess, count: int) -> list[int]:
        async with api.client() as http:
            return [(await submit(http, tenant, count_job()))["id"] for _ in range(count)]

    per_client = TOTAL_JOBS // CLIENTS
    batches = await asyncio.gather(
        *(client_loop(cluster.apis[c % 2], per_client) for c in range(CLIENTS))
    )
    ids = {job_id for batch in batches for job_id in batch}
    assert len(ids) == TOTAL_JOBS
    submitted = time.monotonic()

    async with open_database(cluster.database_url) as database:

        async def all_finished() -> dict[str, int] | None:
            counts = await status_counts(database, ids)
            assert not counts.get("failed") and not counts.get("cancelled"), counts
            return counts if counts.get("succeeded", 0) == TOTAL_JOBS else None

        await wait_until(all_finished, timeout=120, interval=0.25, what="all jobs to succeed")
        finished = time.monotonic()
        async with database.sessions() as session:
            attempts = Counter(
                (await session.scalars(select(Job.attempts).where(Job.id.in_(ids)))).all()
            )
    assert attempts == {1: TOTAL_JOBS}, attempts

    executions = [e for e in cluster.processes.executions() if e.job_id in ids]
    runs = Counter(e.job_id for e in executions)
    assert set(runs) == ids, f"{len(ids - set(runs))} jobs never ran"
    duplicates = {job_id: n for job_id, n in runs.items() if n != 1}
    assert not duplicates, f"jobs that ran more than once: {duplicates}"
    by_pid = Counter(e.pid for e in executions)
    assert set(by_pid) == {w.pid for w in cluster.workers}, by_pid
    print(
        f"{TOTAL_JOBS} jobs submitted in {submitted - started:.1f} s, all succeeded "
        f"{finished - started:.1f} s after the first submission; per worker: {dict(by_pid)}"
    )


async def test_websocket_on_one_api_sees_every_event_of_a_job_from_the_other(
    cluster: Cluster,
) -> None:
    tenant = cluster.tenant
    first, second = cluster.apis
    async with second.client() as http:
        job = await submit(http, tenant, count_job(seconds=1.5, steps=5))
    url = f"{first.ws_url}/ws/jobs/{job['id']}?token={tenant.key}"

    received: list[dict[str, Any]] = []
    arrivals: list[float] = []
    async with asyncio.timeout(60), connect(url, proxy=None) as websocket:
        async for message in websocket:
            event = json.loads(message)
            if event.get("type") != "keepalive":
                received.append(event)
                arrivals.append(time.time())
    assert websocket.close_code == 1000, (websocket.close_code, websocket.close_reason)

    seqs = [event["seq"] for event in received]
    assert seqs == list(range(1, len(received) + 1)), seqs
    assert received[-1]["type"] == "status" and received[-1]["data"]["status"] == "succeeded"
    assert len([e for e in received if e["type"] == "progress"]) == 5

    async with first.client() as http:
        streamed = await read_sse(http, tenant, job["id"])
    async with open_database(cluster.database_url) as database:
        stored = await db_events(database, tenant, job["id"])
    assert received == streamed == stored

    lags = [
        arrival - _timestamp(event["created_at"])
        for arrival, event in zip(arrivals, received, strict=True)
    ]
    print(
        f"WebSocket on api-1, job {job['id']} from api-2: {len(received)} events; "
        f"delivery lag per event (s): {[round(lag, 3) for lag in lags]}"
    )


def _timestamp(iso: str) -> float:
    return datetime.fromisoformat(iso.replace("Z", "+00:00")).timestamp()


async def test_cancel_through_one_api_stops_a_job_running_on_a_worker(cluster: Cluster) -> None:
    tenant = cluster.tenant
    first, second = cluster.apis
    async with second.client() as http:
        job = await submit(http, tenant, count_job(seconds=60, steps=60))
        running = await wait_job(http, tenant, job["id"], {"running"}, timeout=60)
    worker_pids = {w.pid for w in cluster.workers}

    async def executing() -> bool | None:
        executions = [e for e in cluster.processes.executions() if e.job_id == job["id"]]
        return True if executions else None

    await wait_until(executing, timeout=30, what=f"job {job['id']} to start executing")

    async with first.client() as http:
        asked = time.monotonic()
        response = await http.post(
            f"{jobs_path(tenant.org_id, job['id'])}/cancel", headers=tenant.headers
        )
        assert response.status_code == 200, response.text
        assert response.json()["cancel_requested"] is True
        done = await wait_job(http, tenant, job["id"], timeout=30)
        delay = time.monotonic() - asked
        assert done["status"] == "cancelled", done
        assert done["attempts"] == 1 and done["finished_at"] is not None
        final = await get_job(http, tenant, job["id"])
    print(f"job {job['id']} cancelled {delay:.2f} s after the cancel request (spec: within 2 s)")

    [execution] = [e for e in cluster.processes.executions() if e.job_id == job["id"]]
    assert execution.pid in worker_pids
    assert running["attempts"] == 1 and final["status"] == "cancelled"
    async with open_database(cluster.database_url) as database:
        events = await db_events(database, tenant, job["id"])
    types = [(e["type"], e["data"].get("status")) for e in events]
    assert ("cancel_requested", None) in types
    assert types[-1] == ("status", "cancelled")


async def test_a_key_revoked_through_one_api_is_refused_by_the_other(cluster: Cluster):
    tenant, (first, second) = cluster.tenant, cluster.apis
    keys = f"/v1/organizations/{tenant.org_id}/api-keys"
    async with first.client(headers=tenant.headers) as http:
        created = (await http.post(keys, json={"name": "revoked soon"})).json()
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    for api in (first, second):  # both processes now hold the key in their caches
        async with api.client(headers=headers) as http:
            assert (await http.get("/v1/users/me")).status_code == 200
            assert (await http.get("/v1/users/me")).status_code == 200
    async with first.client(headers=tenant.headers) as http:
        assert (await http.delete(f"{keys}/{created['id']}")).status_code == 200

    async def refused() -> bool | None:
        async with second.client(headers=headers) as http:
            response = await http.get("/v1/users/me")
        return True if response.status_code == 401 else None

    await wait_until(refused, timeout=30, what="the other API to refuse the revoked key")
    async with first.client(headers=headers) as http:
        assert (await http.get("/v1/users/me")).status_code == 401

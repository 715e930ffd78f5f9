"""Jobs through the canonical and legacy APIs, run by the embedded worker: lifecycle,
cancellation, timeout, retries, event replay (SSE and WebSocket), idempotency, isolation."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest
import websockets

from genway.auth.permissions import Role
from genway.config import Settings
from tests.support import Tenant, bearer

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "embedded_worker": True,
            "worker_concurrency": 2,
            "retry_base_s": 0.05,
            "reaper_interval_s": 0.5,
            "job_input_max_bytes": 10_000,
        }
    )


def jobs_url(tenant: Tenant) -> str:
    return f"/v1/organizations/{tenant.org_id}/jobs"


async def submit(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    body.setdefault("kind", "diagnostic.sleep")
    response = await client.post(jobs_url(tenant), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_for(
    client: httpx.AsyncClient, tenant: Tenant, job_id: int, statuses: set[str] = TERMINAL
) -> dict[str, Any]:
    for _ in range(600):
        job = (await client.get(f"{jobs_url(tenant)}/{job_id}", headers=tenant.headers)).json()
        if job["status"] in statuses:
            return dict(job)
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


async def sse_events(
    client: httpx.AsyncClient, tenant: Tenant, job_id: int, last_event_id: int | None = None
) -> list[dict[str, Any]]:
    headers = dict(tenant.headers)
    if last_event_id is not None:
        headers["Last-Event-ID"] = str(last_event_id)
    events = []
    async with client.stream("GET", f"{jobs_url(tenant)}/{job_id}/events", headers=headers) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        async for line in r.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


async def test_job_runs_to_success_with_progress_events(client: httpx.AsyncClient, tenant: Tenant):
    job = await submit(client, tenant, input={"seconds": 0.2, "steps": 4})
    assert job["status"] == "queued" and job["input"]["steps"] == 4
    events = await sse_events(client, tenant, job["id"])
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses == ["queued", "running", "succeeded"]
    progress = [e["data"]["progress"] for e in events if e["type"] == "progress"]
    assert progress == [0.25, 0.5, 0.75, 1.0]
    done = await wait_for(client, tenant, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert done["result"] == {"slept_s": 0.2, "steps": 4} and done["progress"] == 1.0
    assert done["started_at"] and done["finished_at"] and done["queue_position"] is None
    legacy = await client.get(f"/api/v1/jobs/{job['id']}/result", headers=tenant.headers)
    assert legacy.status_code == 200 and legacy.json()["result"]["steps"] == 4


async def test_replay_after_last_event_id(client: httpx.AsyncClient, tenant: Tenant):
    job = await submit(client, tenant, input={"seconds": 0.1, "steps": 3})
    everything = await sse_events(client, tenant, job["id"])
    replayed = await sse_events(client, tenant, job["id"], last_event_id=2)
    assert replayed == everything[2:]
    by_query = await client.get(
        f"{jobs_url(tenant)}/{job['id']}/events", params={"after": 4}, headers=tenant.headers
    )
    seqs = [
        json.loads(line[6:])["seq"]
        for line in by_query.text.splitlines()
        if line.startswith("data: ")
    ]
    assert seqs == [e["seq"] for e in everything[4:]]


async def test_cancel_queued_running_and_finished(client: httpx.AsyncClient, tenant: Tenant):
    long_jobs = [await submit(client, tenant, input={"seconds": 30, "steps": 30}) for _ in range(2)]
    queued = await submit(client, tenant, input={"seconds": 30})
    for running in long_jobs:
        await wait_for(client, tenant, running["id"], {"running"})
    assert (await client.get(f"{jobs_url(tenant)}/{queued['id']}", headers=tenant.headers)).json()[
        "queue_position"
    ] == 1
    cancelled = await client.post(
        f"{jobs_url(tenant)}/{queued['id']}/cancel", headers=tenant.headers
    )
    assert cancelled.status_code == 200
    assert (
        cancelled.json()["status"] == "cancelled"
        and "before it started" in cancelled.json()["message"]
    )

    target = long_jobs[0]
    signalled = await client.post(
        f"{jobs_url(tenant)}/{target['id']}/cancel", headers=tenant.headers
    )
    assert signalled.status_code == 200 and signalled.json()["cancel_requested"] is True
    final = await wait_for(client, tenant, target["id"])
    assert final["status"] == "cancelled"
    events = await sse_events(client, tenant, target["id"])
    assert "cancel_requested" in [e["type"] for e in events]

    again = await client.post(f"{jobs_url(tenant)}/{target['id']}/cancel", headers=tenant.headers)
    assert again.status_code == 200 and "already cancelled" in again.json()["message"]
    legacy = await client.delete(f"/api/v1/jobs/{long_jobs[1]['id']}", headers=tenant.headers)
    assert legacy.status_code == 200
    assert (await wait_for(client, tenant, long_jobs[1]["id"]))["status"] == "cancelled"


async def test_timeout_fails_with_code_timeout(client: httpx.AsyncClient, tenant: Tenant):
    job = await submit(client, tenant, input={"seconds": 30, "steps": 1}, timeout_s=0.3)
    done = await wait_for(client, tenant, job["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "timeout"


async def test_retryable_failures_retry_with_backoff_then_succeed(
    client: httpx.AsyncClient, tenant: Tenant
):
    job = await submit(client, tenant, input={"fail_attempts": 2}, max_attempts=3)
    done = await wait_for(client, tenant, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 3
    events = await sse_events(client, tenant, job["id"])
    statuses = [e["data"]["status"] for e in events if e["type"] == "status"]
    assert statuses == ["queued", "running", "queued", "running", "queued", "running", "succeeded"]
    retry_reasons = [e["data"]["reason"] for e in events if e["data"].get("status") == "queued"][1:]
    assert all("retry in" in reason for reason in retry_reasons)

    exhausted = await submit(client, tenant, input={"fail_attempts": 5}, max_attempts=2)
    failed = await wait_for(client, tenant, exhausted["id"])
    assert failed["status"] == "failed" and failed["attempts"] == 2
    assert failed["error"]["code"] == "diagnostic_retry"


async def test_non_retryable_failure(client: httpx.AsyncClient, tenant: Tenant):
    job = await submit(client, tenant, input={"fail": True})
    done = await wait_for(client, tenant, job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"] == {
        "code": "diagnostic_failure",
        "message": "diagnostic.sleep was asked to fail",
    }
    result = await client.get(f"/api/v1/jobs/{job['id']}/result", headers=tenant.headers)
    assert result.status_code == 409 and result.json()["error"]["code"] == "diagnostic_failure"


async def test_idempotency_key(client: httpx.AsyncClient, tenant: Tenant):
    headers = {**tenant.headers, "Idempotency-Key": "order-42"}
    body = {"kind": "diagnostic.sleep", "input": {"seconds": 0}}
    first = await client.post(jobs_url(tenant), json=body, headers=headers)
    second = await client.post(jobs_url(tenant), json=body, headers=headers)
    assert first.status_code == 201 and second.status_code == 200
    assert first.json()["id"] == second.json()["id"]
    different = await client.post(jobs_url(tenant), json={**body, "priority": 5}, headers=headers)
    assert different.status_code == 409
    legacy = await client.post("/api/v1/jobs", json=body, headers=headers)
    assert legacy.status_code == 200 and legacy.json()["job_id"] == first.json()["id"]


async def test_invalid_jobs_are_refused_clearly(client: httpx.AsyncClient, tenant: Tenant):
    unknown = await client.post(jobs_url(tenant), json={"kind": "nope"}, headers=tenant.headers)
    assert unknown.status_code == 422 and "Unknown job kind 'nope'" in unknown.json()["detail"]
    bad_input = await client.post(
        jobs_url(tenant),
        json={"kind": "diagnostic.sleep", "input": {"seconds": -1}},
        headers=tenant.headers,
    )
    assert bad_input.status_code == 422
    assert bad_input.json()["detail"][0]["loc"] == ["body", "input", "seconds"]
    too_big = await client.post(
        jobs_url(tenant),
        json={"kind": "diagnostic.sleep", "input": {"pad": "x" * 20_000}},
        headers=tenant.headers,
    )
    assert too_big.status_code == 413 and too_big.json()["status_code"] == 413
    bad_cursor = await client.get(
        jobs_url(tenant), params={"cursor": "zzz"}, headers=tenant.headers
    )
    assert bad_cursor.status_code == 422
    _viewer_id, viewer_key = await tenant.add_member(Role.VIEWER)
    refused = await client.post(
        jobs_url(tenant), json={"kind": "diagnostic.sleep"}, headers=bearer(viewer_key)
    )
    assert refused.status_code == 403


async def test_listing_is_newest_first_with_stable_cursor(
    client: httpx.AsyncClient, tenant: Tenant
):
    ids = [(await submit(client, tenant, input={"seconds": 0}))["id"] for _ in range(5)]
    first = (await client.get(jobs_url(tenant), params={"limit": 2}, headers=tenant.headers)).json()
    assert [j["id"] for j in first["items"]] == ids[::-1][:2]
    await submit(client, tenant, input={"seconds": 0})  # a new job must not shift the next page
    second = (
        await client.get(
            jobs_url(tenant),
            params={"limit": 2, "cursor": first["next_cursor"]},
            headers=tenant.headers,
        )
    ).json()
    assert [j["id"] for j in second["items"]] == ids[::-1][2:4]
    by_kind = await client.get(
        jobs_url(tenant), params={"kind": "other.kind"}, headers=tenant.headers
    )
    assert by_kind.json()["items"] == []
    legacy = await client.get("/api/v1/jobs", params={"limit": 100}, headers=tenant.headers)
    assert len(legacy.json()["items"]) == 6


async def test_websocket_replays_and_follows_until_the_job_ends(
    server: str, client: httpx.AsyncClient, tenant: Tenant
):
    job = await submit(client, tenant, input={"seconds": 0.3, "steps": 3})
    ws_url = server.replace("http://", "ws://") + f"/ws/jobs/{job['id']}"
    received = []
    async with websockets.connect(f"{ws_url}?token={tenant.key}") as socket:
        async for message in socket:
            received.append(json.loads(message))
    assert socket.close_code == 1000
    events = [e for e in received if e.get("type") != "keepalive"]
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert events[-1]["data"]["status"] == "succeeded"
    async with websockets.connect(
        f"{ws_url}?after=3", additional_headers={"X-API-Key": tenant.key}
    ) as socket:
        replayed = [json.loads(m) async for m in socket]
    assert [e["seq"] for e in replayed] == [e["seq"] for e in events[3:]]


async def test_other_organizations_cannot_see_jobs_events_or_websocket(
    server: str, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    job = await submit(client, tenant, input={"seconds": 0})
    await wait_for(client, tenant, job["id"])
    for path in (f"/api/v1/jobs/{job['id']}", f"/api/v1/jobs/{job['id']}/result"):
        response = await client.get(path, headers=other_tenant.headers)
        assert response.status_code == 404 and "diagnostic" not in response.text
    delete = await client.delete(f"/api/v1/jobs/{job['id']}", headers=other_tenant.headers)
    assert delete.status_code == 404
    listed = await client.get("/api/v1/jobs", headers=other_tenant.headers)
    assert listed.json()["items"] == []
    ws_url = server.replace("http://", "ws://") + f"/ws/jobs/{job['id']}"
    async with websockets.connect(f"{ws_url}?token={other_tenant.key}") as socket:
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()
    assert socket.close_code == 4404
    async with websockets.connect(f"{ws_url}?token=gw_bogus") as socket:
        with pytest.raises(websockets.ConnectionClosed):
            await socket.recv()
    assert socket.close_code == 4401


async def test_canonical_job_routes_and_project_ids_stay_in_their_organization(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    job = await submit(client, tenant, input={"seconds": 0})
    mine = f"/v1/organizations/{tenant.org_id}/jobs/{job['id']}"
    theirs = f"/v1/organizations/{other_tenant.org_id}/jobs/{job['id']}"
    for method, path in [
        ("GET", mine),
        ("GET", f"{mine}/events"),
        ("POST", f"{mine}/cancel"),
        ("GET", theirs),
        ("GET", f"{theirs}/events"),
        ("POST", f"{theirs}/cancel"),
    ]:
        response = await client.request(method, path, headers=other_tenant.headers)
        assert response.status_code == 404, (method, path, response.text)
        assert "diagnostic" not in response.text
    project = await client.post(
        f"/v1/organizations/{other_tenant.org_id}/projects",
        json={"name": "theirs"},
        headers=other_tenant.headers,
    )
    assert project.status_code == 201, project.text
    refused = await client.post(
        jobs_url(tenant),
        json={"kind": "diagnostic.sleep", "project_id": project.json()["id"]},
        headers=tenant.headers,
    )
    assert refused.status_code == 404 and "theirs" not in refused.text
    legacy = await client.post(
        "/api/v1/jobs",
        json={"kind": "diagnostic.sleep", "project_id": project.json()["id"]},
        headers=tenant.headers,
    )
    assert legacy.status_code == 404


async def test_streams_of_an_ended_job_end_when_the_client_has_everything(
    server: str, client: httpx.AsyncClient, tenant: Tenant
):
    job = await submit(client, tenant, input={"seconds": 0})
    await wait_for(client, tenant, job["id"])
    events = f"{jobs_url(tenant)}/{job['id']}/events"
    async with asyncio.timeout(10):  # what a browser's EventSource sends on reconnect
        for headers in ({"Last-Event-ID": "999"}, {}):
            response = await client.get(events, headers={**tenant.headers, **headers})
            assert response.status_code == 200
        assert (
            "event: status"
            not in (await client.get(events, params={"after": 999}, headers=tenant.headers)).text
        )
        ws_url = server.replace("http://", "ws://") + f"/ws/jobs/{job['id']}?after=999"
        async with websockets.connect(f"{ws_url}&token={tenant.key}") as socket:
            with pytest.raises(websockets.ConnectionClosedOK):
                await socket.recv()
        assert socket.close_code == 1000

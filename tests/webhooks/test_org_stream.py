"""The organization event stream over WebSocket and SSE: live job events, replay from a
cursor, type filters, and nothing for another organization."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import select

from genway.config import Settings
from genway.db import Database
from genway.jobs.models import JobEvent
from tests.support import Tenant


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"embedded_worker": True})


def ws_url(server: str, tenant: Tenant, query: str = "") -> str:
    return server.replace("http://", "ws://") + f"/v1/organizations/{tenant.org_id}/events{query}"


async def submit(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.post(
        f"/v1/organizations/{tenant.org_id}/jobs",
        json={"kind": "diagnostic.sleep", "input": {"seconds": 0}},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def receive_until(socket: Any, type_: str) -> list[dict[str, Any]]:
    messages = []
    async with asyncio.timeout(20):
        while True:
            message = json.loads(await socket.recv())
            messages.append(message)
            if message["type"] == type_:
                return messages


async def test_a_websocket_subscriber_sees_the_organizations_job_events_and_can_resume(
    client: httpx.AsyncClient, server: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    async with (
        websockets.connect(ws_url(server, tenant), additional_headers=tenant.headers) as mine,
        websockets.connect(
            ws_url(server, other_tenant), additional_headers=other_tenant.headers
        ) as theirs,
    ):
        await asyncio.sleep(0.2)
        job = await submit(client, tenant)
        messages = await receive_until(mine, "job.succeeded")
        messages = [m for m in messages if m["type"] != "job.progress"]
        assert [m["type"] for m in messages] == ["job.queued", "job.started", "job.succeeded"]
        assert {m["job_id"] for m in messages} == {job["id"]}
        with pytest.raises(TimeoutError):
            async with asyncio.timeout(0.5):
                await theirs.recv()

    page = await client.get(
        f"/v1/organizations/{tenant.org_id}/events",
        params={"after": messages[0]["id"]},
        headers=tenant.headers,
    )
    assert page.status_code == 200, page.text
    replay = [m for m in page.json()["items"] if m["type"] != "job.progress"]
    assert replay == messages[1:]

    async with websockets.connect(
        ws_url(server, tenant, f"?after={messages[0]['id']}&types=job.succeeded"),
        additional_headers=tenant.headers,
    ) as resumed:
        replayed = await receive_until(resumed, "job.succeeded")
        assert [m["id"] for m in replayed] == [messages[2]["id"]]


async def test_credentials_and_arguments_are_checked(
    server: str, tenant: Tenant, other_tenant: Tenant, client: httpx.AsyncClient
) -> None:
    for headers, code in [
        (other_tenant.headers, 4404),
        ({"Authorization": "Bearer gw_nope"}, 4401),
        ({}, 4401),
    ]:
        async with websockets.connect(ws_url(server, tenant), additional_headers=headers) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None and closed.value.rcvd.code == code
    async with websockets.connect(
        ws_url(server, tenant, "?types=nope.*"), additional_headers=tenant.headers
    ) as ws:
        with pytest.raises(websockets.ConnectionClosed) as closed:
            await ws.recv()
        assert closed.value.rcvd is not None and closed.value.rcvd.code == 4422
    events = f"/v1/organizations/{tenant.org_id}/events"
    assert (await client.get(events, headers=other_tenant.headers)).status_code == 404
    assert (await client.get(f"{events}/stream", headers=other_tenant.headers)).status_code == 404
    bad = await client.get(events, params={"after": "x"}, headers=tenant.headers)
    assert bad.status_code == 422


async def test_server_sent_events_filter_by_type(
    client: httpx.AsyncClient, server: str, tenant: Tenant
) -> None:
    url = f"/v1/organizations/{tenant.org_id}/events/stream"
    async with client.stream(
        "GET", url, params={"types": "job.succeeded"}, headers=tenant.headers
    ) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        lines = response.aiter_lines()
        assert await anext(lines) == ": connected"
        job = await submit(client, tenant)
        async with asyncio.timeout(20):
            async for line in lines:
                if line.startswith("data: "):
                    message = json.loads(line[6:])
                    break
    assert message["type"] == "job.succeeded" and message["job_id"] == job["id"]


async def test_paging_never_skips_an_event_written_out_of_time_order(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
) -> None:
    """Two writers: the event that got the higher id may carry the earlier time (its writer
    stamped it first, committed last). Pages must still hand out every event."""
    org = f"/v1/organizations/{tenant.org_id}"
    # A paused queue: the jobs stay queued, so no worker adds events while the test pages.
    paused = await client.post(f"{org}/queue/pause", headers=tenant.headers)
    assert paused.status_code == 200, paused.text
    body = {"kind": "diagnostic.sleep", "input": {"seconds": 0}}
    for _ in range(3):
        made = await client.post(f"{org}/jobs", json=body, headers=tenant.headers)
        assert made.status_code == 201
    # Set-up only: the race itself cannot be provoked on demand, so its outcome is written.
    async with db.transaction() as session:
        events = (await session.scalars(select(JobEvent).order_by(JobEvent.id))).all()
        assert len(events) == 3
        events[-1].created_at = events[0].created_at - timedelta(seconds=1)
    seen: list[str] = []
    cursor = None
    for _ in range(10):
        params = {"limit": 1, **({"after": cursor} if cursor else {})}
        page = await client.get(f"{org}/events", params=params, headers=tenant.headers)
        assert page.status_code == 200, page.text
        seen += [item["id"] for item in page.json()["items"]]
        if not page.json()["items"]:
            break
        cursor = page.json()["next_cursor"]
    job_parts = {int(message.split(".")[0]) for message in seen}
    assert len(seen) == 4 and job_parts >= {1, 2, 3}, seen  # three jobs' events, one pause

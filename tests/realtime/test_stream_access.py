"""Open streams (job and organization WebSockets and SSE) end soon after their credential stops
granting access, relay nothing committed after that, stay open for a lowered role, and count
against the organization's stream cap and request rate limit."""

from __future__ import annotations

import asyncio
import contextlib
import json
import secrets
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest
import websockets
from sqlalchemy import update

from genway.app import create_app
from genway.auth.permissions import Role
from genway.config import Settings
from genway.db import Database
from genway.orgs.models import Organization, User
from tests.conftest import REDIS_URL, require_service
from tests.support import Tenant, bearer, live_server, login

CLOSE_BOUND_S = 10  # generous: the promise is about a second


def ws_url(server: str, path: str) -> str:
    return server.replace("http://", "ws://") + path


async def create_key(client: httpx.AsyncClient, tenant: Tenant, role: str = "member") -> Any:
    response = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        json={"name": "streams", "role": role},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return response.json()


async def submit(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    """A job that stays queued (no worker here), so its streams stay open."""
    response = await client.post(
        f"/v1/organizations/{tenant.org_id}/jobs",
        json={"kind": "diagnostic.sleep", "input": {"seconds": 0}},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def close_code(socket: Any, received: list[dict[str, Any]]) -> int:
    """Read until the server closes the socket; the messages go to `received`."""
    async with asyncio.timeout(CLOSE_BOUND_S):
        while True:
            try:
                received.append(json.loads(await socket.recv()))
            except websockets.ConnectionClosed as closed:
                assert closed.rcvd is not None, "the server did not close the socket"
                return closed.rcvd.code


class SSEReader:
    """Reads an SSE stream in the background; `ended` is set when the server ends it."""

    def __init__(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        self.lines: list[str] = []
        self.started = asyncio.Event()
        self.ended = asyncio.Event()
        self.status = 0
        self._task = asyncio.create_task(self._read(client, url, headers))

    async def _read(self, client: httpx.AsyncClient, url: str, headers: dict[str, str]) -> None:
        async with client.stream("GET", url, headers=headers) as response:
            self.status = response.status_code
            self.started.set()
            async for line in response.aiter_lines():
                self.lines.append(line)
        self.ended.set()

    async def wait_started(self) -> None:
        async with asyncio.timeout(CLOSE_BOUND_S):
            await self.started.wait()
        assert self.status == 200, self.status

    async def wait_ended(self) -> None:
        async with asyncio.timeout(CLOSE_BOUND_S):
            await self.ended.wait()

    async def stop(self) -> None:
        self._task.cancel()
        with contextlib.suppress(asyncio.CancelledError, httpx.HTTPError):
            await self._task


@contextlib.asynccontextmanager
async def sse(
    client: httpx.AsyncClient, url: str, headers: dict[str, str]
) -> AsyncIterator[SSEReader]:
    reader = SSEReader(client, url, headers)
    try:
        await reader.wait_started()
        yield reader
    finally:
        await reader.stop()


def mentions(items: list[Any], *job_ids: int) -> bool:
    text = json.dumps(items)
    return any(f'"job_id": {job_id}' in text or f'"id": {job_id},' in text for job_id in job_ids)


async def test_revoking_a_key_ends_every_stream_opened_with_it(
    client: httpx.AsyncClient, server: str, tenant: Tenant
) -> None:
    key = await create_key(client, tenant)
    headers = bearer(key["api_key"])
    job = await submit(client, tenant)
    org, jobs = f"/v1/organizations/{tenant.org_id}", f"/v1/organizations/{tenant.org_id}/jobs"
    job_received: list[dict[str, Any]] = []
    org_received: list[dict[str, Any]] = []
    async with (
        websockets.connect(
            ws_url(server, f"/ws/jobs/{job['id']}"), additional_headers=headers
        ) as job_ws,
        websockets.connect(ws_url(server, f"{org}/events"), additional_headers=headers) as org_ws,
        sse(client, f"{jobs}/{job['id']}/events", headers) as job_sse,
        sse(client, f"{org}/events/stream", headers) as org_sse,
    ):
        job_received.append(json.loads(await job_ws.recv()))  # the replayed "queued"
        revoked = await client.delete(f"{org}/api-keys/{key['id']}", headers=tenant.headers)
        assert revoked.status_code == 200, revoked.text
        # Committed after the revocation: none of it may reach the revoked key's streams.
        cancelled = await client.post(f"{jobs}/{job['id']}/cancel", headers=tenant.headers)
        assert cancelled.status_code == 200, cancelled.text
        later = await submit(client, tenant)

        assert await close_code(job_ws, job_received) == 4401
        assert await close_code(org_ws, org_received) == 4401
        await job_sse.wait_ended()
        await org_sse.wait_ended()

    assert [event["type"] for event in job_received] == ["status"]
    assert not mentions(org_received, later["id"]) and "cancelled" not in json.dumps(org_received)
    # The job's stream replayed its one event from before; the organization's started live.
    job_data = [line for line in job_sse.lines if line.startswith("data:")]
    assert len(job_data) == 1 and "cancelled" not in job_data[0]
    assert not [line for line in org_sse.lines if line.startswith("data:")]
    assert (await client.get(f"{org}/events", headers=headers)).status_code == 401


async def test_removing_a_member_ends_their_key_and_login_streams(
    client: httpx.AsyncClient, server: str, tenant: Tenant
) -> None:
    user_id, key = await tenant.add_member(Role.MEMBER, email="leaving@example.com")
    token = (await login(client, "leaving@example.com"))["access_token"]
    url = ws_url(server, f"/v1/organizations/{tenant.org_id}/events")
    async with (
        websockets.connect(url, additional_headers=bearer(key)) as with_key,
        websockets.connect(f"{url}?token={token}") as with_login,
    ):
        removed = await client.delete(
            f"/v1/organizations/{tenant.org_id}/members/{user_id}", headers=tenant.headers
        )
        assert removed.status_code == 204, removed.text
        later = await submit(client, tenant)
        key_received: list[dict[str, Any]] = []
        login_received: list[dict[str, Any]] = []
        assert await close_code(with_key, key_received) == 4401
        assert await close_code(with_login, login_received) == 4403
    assert not mentions(key_received + login_received, later["id"])


async def test_a_lowered_role_that_may_still_read_keeps_its_stream(
    client: httpx.AsyncClient, server: str, tenant: Tenant
) -> None:
    user_id, key = await tenant.add_member(Role.ADMIN)
    url = ws_url(server, f"/v1/organizations/{tenant.org_id}/events")
    async with websockets.connect(url, additional_headers=bearer(key)) as socket:
        lowered = await client.patch(
            f"/v1/organizations/{tenant.org_id}/members/{user_id}",
            json={"role": "viewer"},
            headers=tenant.headers,
        )
        assert lowered.status_code == 200, lowered.text
        job = await submit(client, tenant)
        async with asyncio.timeout(CLOSE_BOUND_S):
            while True:  # the job's event arrives: the stream outlived the role change
                message = json.loads(await socket.recv())
                if message.get("job_id") == job["id"]:
                    break
    assert socket.close_code in (1000, 1005)  # closed by us, not by the server


@pytest.fixture
async def platform_admin(db: Database, tenant: Tenant) -> Tenant:
    async with db.transaction() as session:
        await session.execute(
            update(User).where(User.id == tenant.owner_id).values(is_platform_admin=True)
        )
    return tenant


async def test_suspending_the_organization_or_the_user_ends_their_streams(
    client: httpx.AsyncClient, server: str, platform_admin: Tenant, other_tenant: Tenant
) -> None:
    admin = platform_admin.headers
    user_id, key = await other_tenant.add_member(Role.MEMBER)
    org_url = ws_url(server, f"/v1/organizations/{other_tenant.org_id}/events")
    async with (
        websockets.connect(org_url, additional_headers=other_tenant.headers) as owner_socket,
        websockets.connect(org_url, additional_headers=bearer(key)) as member_socket,
    ):
        deactivated = await client.patch(
            f"/api/v1/admin/users/{user_id}", json={"is_active": False}, headers=admin
        )
        assert deactivated.status_code == 200, deactivated.text
        assert await close_code(member_socket, []) == 4401
        suspended = await client.patch(
            f"/api/v1/admin/orgs/{other_tenant.org_id}", json={"status": "suspended"}, headers=admin
        )
        assert suspended.status_code == 200, suspended.text
        assert await close_code(owner_socket, []) == 4403


async def test_an_organization_holds_at_most_its_cap_of_streams(
    settings: Settings, tenant: Tenant, other_tenant: Tenant
) -> None:
    app = create_app(settings.model_copy(update={"max_streams_per_org": 2}))
    async with live_server(app) as server, httpx.AsyncClient(base_url=server) as client:
        await _fill_and_exceed_the_cap(client, server, tenant, other_tenant)


async def _fill_and_exceed_the_cap(
    client: httpx.AsyncClient, server: str, tenant: Tenant, other_tenant: Tenant
) -> None:
    org = f"/v1/organizations/{tenant.org_id}"
    url = ws_url(server, f"{org}/events")
    async with (
        websockets.connect(url, additional_headers=tenant.headers),
        sse(client, f"{org}/events/stream", tenant.headers),
    ):
        async with websockets.connect(url, additional_headers=tenant.headers) as extra:
            assert await close_code(extra, []) == 4429
        job = await submit(client, tenant)
        async with websockets.connect(
            ws_url(server, f"/ws/jobs/{job['id']}"), additional_headers=tenant.headers
        ) as extra:
            assert await close_code(extra, []) == 4429
        refused = await client.get(f"{org}/events/stream", headers=tenant.headers)
        assert refused.status_code == 429 and int(refused.headers["Retry-After"]) >= 1
        other = ws_url(server, f"/v1/organizations/{other_tenant.org_id}/events")
        async with websockets.connect(other, additional_headers=other_tenant.headers) as theirs:
            await submit(client, other_tenant)
            assert json.loads(await theirs.recv())["type"] == "job.queued"
    # Closed streams give their places back.
    async with websockets.connect(url, additional_headers=tenant.headers) as again:
        await submit(client, tenant)
        assert json.loads(await again.recv())["type"] == "job.queued"


async def test_opening_a_stream_counts_against_the_rate_limit(
    client: httpx.AsyncClient, server: str, tenant: Tenant, db: Database
) -> None:
    job = await submit(client, tenant)
    async with db.transaction() as session:
        await session.execute(
            update(Organization)
            .where(Organization.id == tenant.org_id)
            .values(overrides={"requests_per_window": 2, "user_requests_per_window": 2})
        )
    org = f"/v1/organizations/{tenant.org_id}"
    url = ws_url(server, f"{org}/events")
    async with (
        websockets.connect(url, additional_headers=tenant.headers),
        websockets.connect(url, additional_headers=tenant.headers),
    ):
        # Two opens spent the window: streams of every kind are refused, and so is REST.
        for path in (f"{org}/events", f"/ws/jobs/{job['id']}", "/ws"):
            async with websockets.connect(
                ws_url(server, path), additional_headers=tenant.headers
            ) as refused:
                assert await close_code(refused, []) == 4429
        response = await client.get(f"{org}/events/stream", headers=tenant.headers)
        assert response.status_code == 429 and "Retry-After" in response.headers
        assert (await client.get(f"{org}/jobs", headers=tenant.headers)).status_code == 429


async def test_a_revocation_through_one_process_closes_a_stream_held_by_another(
    settings: Settings, tenant: Tenant
) -> None:
    if settings.is_sqlite:
        pytest.skip("several API processes need PostgreSQL (and Redis)")
    redis_url = require_service(REDIS_URL, "redis")
    unique = secrets.token_hex(4)
    shared = settings.model_copy(
        update={
            "redis_url": redis_url,
            "events_channel": f"genway-test-events-{unique}",
            "ratelimit_key_prefix": f"genway-test-limits-{unique}",
            "max_streams_per_org": 1,
            # Only the news through Redis can end the stream quickly.
            "auth_cache_max_age_s": 3600.0,
        }
    )
    path = f"/v1/organizations/{tenant.org_id}/events"
    async with (
        live_server(create_app(shared)) as first,
        live_server(create_app(shared)) as second,
        httpx.AsyncClient(base_url=first, timeout=30) as via_first,
    ):
        key = await create_key(via_first, tenant)
        url = ws_url(second, path)
        async with websockets.connect(url, additional_headers=bearer(key["api_key"])) as socket:
            # The cap counts the streams of every process.
            async with websockets.connect(
                ws_url(first, path), additional_headers=tenant.headers
            ) as extra:
                assert await close_code(extra, []) == 4429
            revoked = await via_first.delete(
                f"/v1/organizations/{tenant.org_id}/api-keys/{key['id']}", headers=tenant.headers
            )
            assert revoked.status_code == 200, revoked.text
            later = await submit(via_first, tenant)
            received: list[dict[str, Any]] = []
            assert await close_code(socket, received) == 4401
    assert not mentions(received, later["id"])

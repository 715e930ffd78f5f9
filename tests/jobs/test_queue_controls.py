"""Queue controls through HTTP with the embedded worker (one slot, so the order in which jobs
start is the order the claim chose): an organization pauses and resumes its queue, reorders its
queued jobs without gaining on other organizations, platform admins pause a kind; roles, events."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from genway.auth.permissions import Role
from genway.config import Settings
from genway.db import Database
from genway.orgs.models import User
from genway.queue.claim import claim_jobs
from tests.support import Tenant, bearer, make_tenant

TERMINAL = {"succeeded", "failed", "cancelled"}


@pytest.fixture
def slots() -> int:
    """The worker's slots: one, so jobs start one by one in the order the claim chose."""
    return 1


@pytest.fixture
def settings(settings: Settings, slots: int) -> Settings:
    return settings.model_copy(
        update={"embedded_worker": True, "worker_concurrency": slots, "ratelimit_enabled": False}
    )


def org_url(tenant: Tenant) -> str:
    return f"/v1/organizations/{tenant.org_id}"


async def submit(
    client: httpx.AsyncClient, tenant: Tenant, headers: dict[str, str] | None = None, **body: Any
) -> dict[str, Any]:
    body.setdefault("kind", "diagnostic.sleep")
    response = await client.post(
        f"{org_url(tenant)}/jobs", json=body, headers=headers or tenant.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def job(client: httpx.AsyncClient, tenant: Tenant, job_id: int) -> dict[str, Any]:
    return dict(
        (await client.get(f"{org_url(tenant)}/jobs/{job_id}", headers=tenant.headers)).json()
    )


async def wait_for(
    client: httpx.AsyncClient, tenant: Tenant, job_id: int, statuses: set[str] = TERMINAL
) -> dict[str, Any]:
    seen: dict[str, Any] = {}
    for _ in range(600):
        seen = await job(client, tenant, job_id)
        if seen["status"] in statuses:
            return seen
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {seen}")


async def queue(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.get(f"{org_url(tenant)}/queue", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def control(client: httpx.AsyncClient, tenant: Tenant, action: str) -> dict[str, Any]:
    response = await client.post(f"{org_url(tenant)}/queue/{action}", headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def org_events(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    response = await client.get(
        f"{org_url(tenant)}/events", params={"types": "queue.*"}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


async def test_a_paused_queue_holds_its_jobs_while_other_orgs_run_until_resumed(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    paused = await control(client, tenant, "pause")
    assert paused["paused"] is True and paused["paused_at"]
    held = await submit(client, tenant)
    assert held["status"] == "queued"
    # Submitted later, same priority, nothing running anywhere: without the pause the worker's
    # one slot would have taken `held` first.
    other = await submit(client, other_tenant)
    assert (await wait_for(client, other_tenant, other["id"]))["status"] == "succeeded"
    still = await job(client, tenant, held["id"])
    assert still["status"] == "queued" and still["started_at"] is None
    view = await queue(client, tenant)
    assert view["paused"] is True and view["counts"]["queued"] == 1
    assert [(j["id"], j["position"], j["waiting_for"]) for j in view["pending"]] == [
        (held["id"], 1, "queue_paused")
    ]

    resumed = await control(client, tenant, "resume")
    assert resumed["paused"] is False
    assert (await wait_for(client, tenant, held["id"]))["status"] == "succeeded"
    assert (await queue(client, tenant))["counts"]["succeeded"] == 1
    events = await org_events(client, tenant)
    assert [e["type"] for e in events] == ["queue.paused", "queue.resumed"]
    assert events[0]["data"] == {"paused": True, "by_user_id": tenant.owner_id}
    assert await org_events(client, other_tenant) == []


async def test_running_jobs_finish_during_a_pause(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    running = await submit(client, tenant, input={"seconds": 0.6, "steps": 6})
    await wait_for(client, tenant, running["id"], {"running"})
    await control(client, tenant, "pause")
    waiting = await submit(client, tenant)
    other = await submit(client, other_tenant)
    assert (await wait_for(client, tenant, running["id"]))["status"] == "succeeded"
    assert (await wait_for(client, other_tenant, other["id"]))["status"] == "succeeded"
    assert (await job(client, tenant, waiting["id"]))["status"] == "queued"
    await control(client, tenant, "resume")
    assert (await wait_for(client, tenant, waiting["id"]))["status"] == "succeeded"


async def test_priority_and_move_to_front_choose_the_next_job(
    client: httpx.AsyncClient, tenant: Tenant
):
    await control(client, tenant, "pause")
    first, second, third = [await submit(client, tenant) for _ in range(3)]
    base = org_url(tenant)
    lowered = await client.patch(
        f"{base}/jobs/{first['id']}/priority", json={"priority": -5}, headers=tenant.headers
    )
    assert lowered.status_code == 200, lowered.text
    assert lowered.json()["priority"] == -5 and lowered.json()["position"] == 3
    front = await client.post(f"{base}/jobs/{third['id']}/move-to-front", headers=tenant.headers)
    assert front.status_code == 200, front.text
    assert front.json()["position"] == 1 and front.json()["priority"] == 1
    order = [j["id"] for j in (await queue(client, tenant))["pending"]]
    assert order == [third["id"], second["id"], first["id"]]
    too_high = await client.patch(
        f"{base}/jobs/{first['id']}/priority", json={"priority": 101}, headers=tenant.headers
    )
    assert too_high.status_code == 422

    await control(client, tenant, "resume")
    done = [await wait_for(client, tenant, j["id"]) for j in (first, second, third)]
    starts = {j["id"]: j["started_at"] for j in done}
    assert sorted(starts, key=lambda i: starts[i]) == [third["id"], second["id"], first["id"]]

    # Once it started, its place cannot change.
    for method, path, body in (
        ("PATCH", f"{base}/jobs/{first['id']}/priority", {"priority": 3}),
        ("POST", f"{base}/jobs/{first['id']}/move-to-front", None),
    ):
        refused = await client.request(method, path, json=body, headers=tenant.headers)
        assert refused.status_code == 409, refused.text
    changes = [e["data"] for e in await org_events(client, tenant) if "job_id" in e["data"]]
    assert [(c["job_id"], c["priority"], c["moved_to_front"]) for c in changes] == [
        (first["id"], -5, False),
        (third["id"], 1, True),
    ]


@pytest.mark.parametrize("slots", [2])
async def test_reordering_keeps_the_fair_share_between_organizations(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, db: Database
):
    long = {"input": {"seconds": 60, "steps": 60}}
    blocker_org = await make_tenant(db)
    blockers = [await submit(client, blocker_org, **long) for _ in range(2)]
    for blocker in blockers:
        await wait_for(client, blocker_org, blocker["id"], {"running"})
    mine = [await submit(client, tenant, **long) for _ in range(3)]
    theirs = await submit(client, other_tenant, **long)
    front = await client.post(
        f"{org_url(tenant)}/jobs/{mine[2]['id']}/move-to-front", headers=tenant.headers
    )
    assert front.status_code == 200

    async def free_a_slot(blocker: dict[str, Any]) -> None:
        cancel = f"{org_url(blocker_org)}/jobs/{blocker['id']}/cancel"
        assert (await client.post(cancel, headers=blocker_org.headers)).status_code == 200

    # Both organizations run nothing: the moved job goes first (it leads its organization).
    await free_a_slot(blockers[0])
    await wait_for(client, tenant, mine[2]["id"], {"running"})
    # Now this organization runs one job and the other none: the other's job goes next, ahead
    # of this organization's older jobs of the same priority.
    await free_a_slot(blockers[1])
    await wait_for(client, other_tenant, theirs["id"], {"running"})
    for waiting in mine[:2]:
        assert (await job(client, tenant, waiting["id"]))["status"] == "queued"
    for done in (*mine, theirs):
        owner = other_tenant if done is theirs else tenant
        cancel = f"{org_url(owner)}/jobs/{done['id']}/cancel"
        await client.post(cancel, headers=owner.headers)


@pytest.fixture
async def platform_admin(db: Database) -> Tenant:
    admin = await make_tenant(db)
    async with db.transaction() as session:
        await session.execute(
            update(User).where(User.id == admin.owner_id).values(is_platform_admin=True)
        )
    return admin


async def test_a_paused_kind_is_not_claimed_by_any_worker(
    client: httpx.AsyncClient, tenant: Tenant, platform_admin: Tenant, db: Database
):
    kinds = "/api/v1/admin/queue/kinds"
    refused = await client.post(f"{kinds}/diagnostic.sleep/pause", headers=tenant.headers)
    assert refused.status_code == 403
    unknown = await client.post(f"{kinds}/no.such.kind/pause", headers=platform_admin.headers)
    assert unknown.status_code == 404
    paused = await client.post(
        f"{kinds}/diagnostic.sleep/pause",
        json={"reason": "driver upgrade"},
        headers=platform_admin.headers,
    )
    assert paused.status_code == 200, paused.text
    assert paused.json()["reason"] == "driver upgrade"
    held = await submit(client, tenant)
    view = await queue(client, tenant)
    assert view["paused"] is False and view["paused_kinds"] == ["diagnostic.sleep"]
    assert view["pending"][0]["waiting_for"] == "kind_paused"
    # Any worker (here a claim of our own, as another process would make) finds nothing.
    async with db.transaction() as session:
        assert await claim_jobs(session, "other-worker", 30, ["diagnostic.sleep"], 5) == []
    listing = (await client.get("/api/v1/admin/queue", headers=platform_admin.headers)).json()
    assert [p["target"] for p in listing["paused_kinds"]] == ["diagnostic.sleep"]
    assert (await job(client, tenant, held["id"]))["status"] == "queued"

    resumed = await client.post(f"{kinds}/diagnostic.sleep/resume", headers=platform_admin.headers)
    assert resumed.status_code == 200 and resumed.json()["paused_kinds"] == []
    assert (await wait_for(client, tenant, held["id"]))["status"] == "succeeded"


async def test_paused_organizations_are_listed_for_admins_and_skipped_by_any_claim(
    client: httpx.AsyncClient, tenant: Tenant, platform_admin: Tenant, db: Database
):
    await control(client, tenant, "pause")
    await submit(client, tenant)
    async with db.transaction() as session:
        assert await claim_jobs(session, "other-worker", 30, ["diagnostic.sleep"], 5) == []
    listing = (await client.get("/api/v1/admin/queue", headers=platform_admin.headers)).json()
    assert listing["paused_org_ids"] == [tenant.org_id]


async def test_roles_and_other_organizations(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    await control(client, tenant, "pause")
    _viewer_id, viewer_key = await tenant.add_member(Role.VIEWER)
    _member_id, member_key = await tenant.add_member(Role.MEMBER)
    _admin_id, admin_key = await tenant.add_member(Role.ADMIN)
    viewer, member, admin = bearer(viewer_key), bearer(member_key), bearer(admin_key)
    base = org_url(tenant)

    assert (await client.get(f"{base}/queue", headers=viewer)).status_code == 200
    for headers in (viewer, member):
        for action in ("pause", "resume"):
            response = await client.post(f"{base}/queue/{action}", headers=headers)
            assert response.status_code == 403, (action, response.text)
    assert (await client.post(f"{base}/queue/resume", headers=admin)).status_code == 200
    assert (await client.post(f"{base}/queue/pause", headers=admin)).status_code == 200

    # A member reorders only their own jobs; an admin any job of the organization.
    owned = await submit(client, tenant)
    own = await submit(client, tenant, headers=member)
    priority = f"{base}/jobs/{{}}/priority"
    for headers, job_id, expected in (
        (viewer, own["id"], 403),
        (member, owned["id"], 403),
        (member, own["id"], 200),
        (admin, owned["id"], 200),
    ):
        response = await client.patch(
            priority.format(job_id), json={"priority": 7}, headers=headers
        )
        assert response.status_code == expected, (job_id, response.text)
    refused = await client.post(f"{base}/jobs/{owned['id']}/move-to-front", headers=member)
    assert refused.status_code == 403

    # Another organization's owner learns nothing, not even that the job exists.
    for method, path in (
        ("GET", f"{base}/queue"),
        ("POST", f"{base}/queue/resume"),
        ("POST", f"{base}/jobs/{owned['id']}/move-to-front"),
    ):
        response = await client.request(method, path, headers=other_tenant.headers)
        assert response.status_code == 404
        assert response.json()["detail"] == f"Organization {tenant.org_id} not found"
    assert (await queue(client, tenant))["paused"] is True
    own_jobs = f"/v1/organizations/{other_tenant.org_id}/jobs/{owned['id']}/move-to-front"
    missing = await client.post(own_jobs, headers=other_tenant.headers)
    assert missing.status_code == 404

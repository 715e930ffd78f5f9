"""Queue controls seen through ComfyUI: `/queue` lists pending prompts in the order they will
start and keeps them pending while the organization's queue is paused; a backend a platform
admin paused gets no new prompts."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest
from sqlalchemy import update

from genway.db import Database
from genway.orgs.models import User
from tests.engines.comfyui.conftest import invert_workflow
from tests.engines.comfyui.helpers import submit, wait_healthy, wait_job
from tests.fakes.comfyui import FakeComfyUI
from tests.support import Tenant, make_tenant


@pytest.fixture
async def platform_admin(db: Database) -> Tenant:
    admin = await make_tenant(db)
    async with db.transaction() as session:
        await session.execute(
            update(User).where(User.id == admin.owner_id).values(is_platform_admin=True)
        )
    return admin


async def queue_prompt(api: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await api.post("/prompt", json={"prompt": invert_workflow()}, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def wait_deferred(api: httpx.AsyncClient, tenant: Tenant, job_id: int) -> None:
    """Until the job went back to the queue because every healthy backend is paused."""
    url = f"/v1/organizations/{tenant.org_id}/events"
    for _ in range(400):
        items = (await api.get(url, params={"types": "job.queued"}, headers=tenant.headers)).json()
        if any(
            e["job_id"] == job_id and "not paused" in (e["data"].get("reason") or "")
            for e in items["items"]
        ):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} was never deferred for paused backends")


async def test_comfy_queue_shows_the_start_order_and_holds_prompts_while_paused(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    base = f"/v1/organizations/{tenant.org_id}"
    assert (await api.post(f"{base}/queue/pause", headers=tenant.headers)).status_code == 200
    first, second, third = [await queue_prompt(api, tenant) for _ in range(3)]
    moved = await api.post(f"{base}/jobs/{third['number']}/move-to-front", headers=tenant.headers)
    assert moved.status_code == 200, moved.text
    queue = (await api.get("/queue", headers=tenant.headers)).json()
    assert queue["queue_running"] == []
    assert [item[1] for item in queue["queue_pending"]] == [
        third["prompt_id"],
        first["prompt_id"],
        second["prompt_id"],
    ]
    assert [item[0] for item in queue["queue_pending"]] == [
        third["number"],
        first["number"],
        second["number"],
    ]
    assert sum(backend.prompt_count for backend in backends) == 0

    assert (await api.post(f"{base}/queue/resume", headers=tenant.headers)).status_code == 200
    for prompt in (first, second, third):
        assert (await wait_job(api, tenant, prompt["number"]))["status"] == "succeeded"
    assert (await api.get("/queue", headers=tenant.headers)).json()["queue_pending"] == []


async def test_a_paused_backend_gets_no_new_prompts(
    api: httpx.AsyncClient, tenant: Tenant, platform_admin: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    admin = platform_admin.headers
    listed = (await api.get("/api/v1/admin/comfyui/backends", headers=admin)).json()
    assert [b["paused"] for b in listed] == [False, False]
    assert [b["url"] for b in listed] == [b.base_url for b in backends]
    first_id = listed[0]["id"]
    unknown = await api.post("/api/v1/admin/comfyui/backends/nosuch/pause", headers=admin)
    assert unknown.status_code == 404
    paused = await api.post(f"/api/v1/admin/comfyui/backends/{first_id}/pause", headers=admin)
    assert paused.status_code == 200, paused.text
    holds = (await api.get("/api/v1/admin/queue", headers=admin)).json()["paused_backends"]
    assert [h["target"] for h in holds] == [first_id]

    jobs = [
        await submit(api, tenant, "comfy.workflow", {"workflow": invert_workflow()})
        for _ in range(4)
    ]
    for job in jobs:
        assert (await wait_job(api, tenant, job["id"]))["status"] == "succeeded"
    assert backends[0].prompt_count == 0 and backends[1].prompt_count == 4

    # With every backend paused a job waits, queued, without spending an attempt.
    second_id = listed[1]["id"]
    await api.post(f"/api/v1/admin/comfyui/backends/{second_id}/pause", headers=admin)
    waiting = await submit(
        api, tenant, "comfy.workflow", {"workflow": invert_workflow()}, max_attempts=1
    )
    await wait_deferred(api, tenant, waiting["id"])
    assert backends[0].prompt_count == 0 and backends[1].prompt_count == 4
    await api.post(f"/api/v1/admin/comfyui/backends/{first_id}/resume", headers=admin)
    done = await wait_job(api, tenant, waiting["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert backends[0].prompt_count == 1
    after = (await api.get("/api/v1/admin/comfyui/backends", headers=admin)).json()
    assert [b["paused"] for b in after] == [False, True]

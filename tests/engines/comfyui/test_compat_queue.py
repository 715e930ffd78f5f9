"""The ComfyUI-compatible queue without a worker running: pending prompts are listed, counted,
deleted and cleared per organization, as ComfyUI's own queue behaves."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from genway.auth.permissions import Role
from genway.config import Settings
from tests.engines.comfyui.conftest import invert_workflow
from tests.support import Tenant


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"embedded_worker": False})


async def queue_prompt(api: httpx.AsyncClient, tenant: Tenant, **body: Any) -> str:
    body = {"prompt": invert_workflow(), **body}
    response = await api.post("/prompt", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["prompt_id"])


async def test_pending_prompts_are_listed_deleted_and_cleared_per_organization(
    api: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    first = await queue_prompt(api, tenant, client_id="c1", extra_data={"note": "n"})
    second = await queue_prompt(api, tenant)
    third = await queue_prompt(api, tenant)
    mine = await queue_prompt(api, other_tenant)
    queue = (await api.get("/queue", headers=tenant.headers)).json()
    assert queue["queue_running"] == []
    pending = queue["queue_pending"]
    # [number, prompt_id, prompt, extra_data, outputs_to_execute], as ComfyUI lists them
    assert [item[1] for item in pending] == [first, second, third]
    assert pending[0][2:] == [invert_workflow(), {"note": "n", "client_id": "c1"}, ["3"]]
    assert (await api.get("/prompt", headers=tenant.headers)).json() == {
        "exec_info": {"queue_remaining": 3}
    }

    # Another organization sees only its own prompt, and its clear removes only that one.
    other = other_tenant.headers
    assert [i[1] for i in (await api.get("/queue", headers=other)).json()["queue_pending"]] == [
        mine
    ]
    await api.post("/queue", json={"delete": [first]}, headers=other)
    await api.post("/queue", json={"clear": True}, headers=other)
    assert (await api.get("/queue", headers=other)).json()["queue_pending"] == []
    assert len((await api.get("/queue", headers=tenant.headers)).json()["queue_pending"]) == 3

    deleted = await api.post("/queue", json={"delete": [second]}, headers=tenant.headers)
    assert deleted.status_code == 200 and deleted.content == b""
    left = (await api.get("/queue", headers=tenant.headers)).json()["queue_pending"]
    assert [item[1] for item in left] == [first, third]
    await api.post("/queue", json={"clear": True}, headers=tenant.headers)
    assert (await api.get("/queue", headers=tenant.headers)).json()["queue_pending"] == []
    # Cancelled before they ran: no history, as in ComfyUI.
    assert (await api.get(f"/history/{first}", headers=tenant.headers)).json() == {}
    assert (await api.get("/prompt", headers=other)).json()["exec_info"]["queue_remaining"] == 0

    # Prompt ids are Genway's (derived from the job); altered or foreign ones are unknown.
    prompt_id = await queue_prompt(api, tenant)
    url = f"/v1/organizations/{tenant.org_id}/jobs"
    job = (await api.get(url, headers=tenant.headers)).json()["items"][0]
    assert job["kind"] == "comfy.workflow" and prompt_id.endswith(f"{job['id']:012x}")
    tampered = "0" * 8 + prompt_id[8:]
    for unknown in (tampered, "not-a-uuid", "00000000-0000-0000-0000-000000000000"):
        assert (await api.get(f"/history/{unknown}", headers=tenant.headers)).json() == {}
    viewer = await tenant.add_member(Role.VIEWER)
    refused = await api.post(
        "/prompt", json={"prompt": invert_workflow()}, headers={"X-API-Key": viewer[1]}
    )
    assert refused.status_code == 403

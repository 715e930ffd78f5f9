"""ComfyUI's native jobs API (`/api/jobs`, ComfyUI after 0.3.64) served from Genway's job store,
in the caller's organization: list, one job, cancel one, cancel many; and newer ComfyUI's check
of a client's `prompt_id` in `POST /prompt`."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx

from tests.engines.comfyui.conftest import invert_workflow
from tests.engines.comfyui.helpers import running_on, wait_healthy, wait_history, wait_until
from tests.fakes.comfyui import FakeComfyUI
from tests.support import Tenant

ENDED = {"completed", "failed", "cancelled"}


async def queue_prompt(
    api: httpx.AsyncClient, tenant: Tenant, prefix: str = "jobs", width: int = 64, **extra: Any
) -> str:
    body = {"prompt": invert_workflow(prefix, width=width), **extra}
    response = await api.post("/prompt", json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return str(response.json()["prompt_id"])


async def wait_native(
    api: httpx.AsyncClient, tenant: Tenant, prompt_id: str, statuses: set[str] = ENDED
) -> dict[str, Any]:
    job: dict[str, Any] = {}
    for _ in range(400):
        job = (await api.get(f"/api/jobs/{prompt_id}", headers=tenant.headers)).json()
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"{prompt_id} never reached {statuses}: {job}")


async def list_ids(api: httpx.AsyncClient, tenant: Tenant, **params: Any) -> list[str]:
    response = await api.get("/api/jobs", params=params, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return [job["id"] for job in response.json()["jobs"]]


def set_pace(backends: list[FakeComfyUI], seconds: float) -> None:
    for backend in backends:
        backend.execution_time = seconds


async def test_list_filters_sorts_and_pages(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    set_pace(backends, 0.6)  # the first prompt runs longest: duration order is not created order
    pnginfo = {"extra_pnginfo": {"workflow": {"id": "wf-a", "nodes": []}}}
    first = await queue_prompt(api, tenant, extra_data=pnginfo)
    await wait_history(api, first, tenant.headers)
    set_pace(backends, 0.05)
    second = await queue_prompt(api, tenant)
    await wait_history(api, second, tenant.headers)
    for backend in backends:
        backend.fail_next_execution("boom", node_id="2", exception_type="RuntimeError")
    third = await queue_prompt(api, tenant, width=32)  # not cached: node 2 runs, and fails
    await wait_history(api, third, tenant.headers)
    for backend in backends:
        backend.next_execution_failure = None
    org_queue = f"/v1/organizations/{tenant.org_id}/queue"
    assert (await api.post(f"{org_queue}/pause", headers=tenant.headers)).status_code == 200
    fourth = await queue_prompt(api, tenant)

    page = (await api.get("/api/jobs", headers=tenant.headers)).json()
    assert [job["id"] for job in page["jobs"]] == [fourth, third, second, first]
    assert [job["status"] for job in page["jobs"]] == [
        "pending",
        "failed",
        "completed",
        "completed",
    ]
    assert page["pagination"] == {"offset": 0, "limit": None, "total": 4, "has_more": False}
    pending = page["jobs"][0]
    assert isinstance(pending["create_time"], int) and pending["outputs_count"] == 0
    assert "execution_start_time" not in pending and "preview_output" not in pending
    assert page["jobs"][3]["workflow_id"] == "wf-a" and "workflow_id" not in page["jobs"][2]
    assert "outputs" not in page["jobs"][2] and "workflow" not in page["jobs"][2]  # list: light

    assert await list_ids(api, tenant, status="completed") == [second, first]
    assert await list_ids(api, tenant, status="completed,failed") == [third, second, first]
    assert await list_ids(api, tenant, status="pending") == [fourth]
    assert await list_ids(api, tenant, sort_order="asc") == [first, second, third, fourth]
    assert await list_ids(api, tenant, workflow_id="wf-a") == [first]

    paged = (await api.get("/api/jobs?limit=2&offset=1", headers=tenant.headers)).json()
    assert [job["id"] for job in paged["jobs"]] == [third, second]
    assert paged["pagination"] == {"offset": 1, "limit": 2, "total": 4, "has_more": True}
    last = (await api.get("/jobs?limit=2&offset=2", headers=tenant.headers)).json()  # no /api
    assert [job["id"] for job in last["jobs"]] == [second, first]
    assert last["pagination"]["has_more"] is False

    by_duration = (
        await api.get("/api/jobs", params={"sort_by": "execution_duration"}, headers=tenant.headers)
    ).json()["jobs"]
    durations = [
        job.get("execution_end_time", 0) - job.get("execution_start_time", 0)
        if "execution_end_time" in job
        else 0
        for job in by_duration
    ]
    assert durations == sorted(durations, reverse=True)
    assert by_duration[0]["id"] == first and by_duration[-1]["id"] == fourth

    for params in ({"status": "queued"}, {"sort_by": "name"}, {"sort_order": "up"}):
        refused = await api.get("/api/jobs", params=params, headers=tenant.headers)
        assert refused.status_code == 400, (params, refused.text)


async def test_one_job_after_it_ran_and_an_execution_error(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    client_id = uuid.uuid4().hex
    prompt_id = await queue_prompt(api, tenant, "detail", client_id=client_id)
    history = await wait_history(api, prompt_id, tenant.headers)
    job = await wait_native(api, tenant, prompt_id)

    assert job["id"] == prompt_id and job["status"] == "completed"
    assert job["outputs"] == history["outputs"]
    assert job["execution_status"] == history["status"]
    assert job["execution_status"]["status_str"] == "success"
    workflow = {"prompt": invert_workflow("detail"), "extra_data": history["prompt"][3]}
    assert job["workflow"] == workflow
    image = history["outputs"]["3"]["images"][0]
    assert job["preview_output"] == {**image, "nodeId": "3", "mediaType": "images"}
    assert job["outputs_count"] == 1 and job["previewable_outputs_count"] == 1
    assert job["priority"] == history["prompt"][0]
    assert job["create_time"] <= job["execution_start_time"] <= job["execution_end_time"]
    assert "execution_error" not in job
    same = (await api.get(f"/jobs/{prompt_id}", headers=tenant.headers)).json()  # without /api
    assert same == job

    for backend in backends:
        backend.fail_next_execution("boom", node_id="2", exception_type="RuntimeError")
    failed_id = await queue_prompt(api, tenant, "broken", width=32)  # node 2 not cached
    failed = await wait_native(api, tenant, failed_id)
    assert failed["status"] == "failed"
    error = failed["execution_error"]
    assert error["node_id"] == "2" and error["node_type"] == "ImageInvert"
    assert error["exception_type"] == "RuntimeError" and "boom" in error["exception_message"]
    assert isinstance(error["traceback"], list) and error["prompt_id"] == failed_id
    assert failed["execution_status"]["status_str"] == "error"
    assert failed["execution_status"]["messages"][-1] == ["execution_error", error]
    assert failed["outputs_count"] == 0 and "preview_output" not in failed


async def test_cancel_one_and_many_in_the_callers_organization_only(
    api: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    org_queue = f"/v1/organizations/{tenant.org_id}/queue"
    assert (await api.post(f"{org_queue}/pause", headers=tenant.headers)).status_code == 200
    one, two, three = [await queue_prompt(api, tenant) for _ in range(3)]
    unknown = str(uuid.uuid4())

    theirs = other_tenant.headers
    assert (await api.get(f"/api/jobs/{one}", headers=theirs)).status_code == 404
    assert (await api.post(f"/api/jobs/{one}/cancel", headers=theirs)).status_code == 404
    batch = await api.post("/api/jobs/cancel", json={"job_ids": [one, two]}, headers=theirs)
    assert batch.status_code == 200 and batch.json() == {"cancelled": False}
    assert (await api.get("/api/jobs", headers=theirs)).json() == {
        "jobs": [],
        "pagination": {"offset": 0, "limit": None, "total": 0, "has_more": False},
    }
    assert await list_ids(api, tenant, status="pending") == [three, two, one]  # untouched
    assert (await api.get(f"/api/jobs/{unknown}", headers=tenant.headers)).status_code == 404
    assert (await api.post(f"/jobs/{unknown}/cancel", headers=tenant.headers)).status_code == 404

    cancelled = await api.post(f"/api/jobs/{one}/cancel", headers=tenant.headers)
    assert cancelled.status_code == 200 and cancelled.json() == {"cancelled": True}
    assert (await api.get(f"/api/jobs/{one}", headers=tenant.headers)).json()["status"] == (
        "cancelled"
    )
    again = await api.post(f"/api/jobs/{one}/cancel", headers=tenant.headers)
    assert again.json() == {"cancelled": False}
    many = {"job_ids": [two, three, unknown, one]}
    batch = await api.post("/api/jobs/cancel", json=many, headers=tenant.headers)
    assert batch.json() == {"cancelled": True}
    assert await list_ids(api, tenant, status="cancelled") == [three, two, one]
    assert await list_ids(api, tenant, status="pending") == []
    batch = await api.post("/jobs/cancel", json=many, headers=tenant.headers)
    assert batch.json() == {"cancelled": False}
    bad = await api.post("/api/jobs/cancel", json={"ids": [two]}, headers=tenant.headers)
    assert bad.status_code == 400
    assert sum(backend.prompt_count for backend in backends) == 0  # none ever reached one

    # A running prompt is interrupted, as Genway's own cancel does.
    assert (await api.post(f"{org_queue}/resume", headers=tenant.headers)).status_code == 200
    for backend in backends:
        backend.execution_time, backend.steps = 30.0, 300
    running = await queue_prompt(api, tenant)
    await wait_native(api, tenant, running, {"in_progress"})
    await wait_until(lambda: running_on(backends) is not None, "the prompt to start upstream")
    assert (await api.post(f"/api/jobs/{running}/cancel", headers=theirs)).status_code == 404
    stopped = await api.post(f"/api/jobs/{running}/cancel", headers=tenant.headers)
    assert stopped.json() == {"cancelled": True}
    job = await wait_native(api, tenant, running)
    assert job["status"] == "cancelled"
    assert job["execution_status"]["messages"][-1][0] == "execution_interrupted"
    assert "execution_start_time" in job and "execution_error" not in job


async def test_post_prompt_refuses_a_non_canonical_prompt_id(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    canonical = str(uuid.uuid4())
    for path, bad in (
        ("/prompt", "not-a-uuid"),
        ("/api/prompt", canonical.upper()),
        ("/prompt", canonical.replace("-", "")),
        ("/prompt", 42),
    ):
        body = {"prompt": invert_workflow(), "prompt_id": bad}
        response = await api.post(path, json=body, headers=tenant.headers)
        assert response.status_code == 400, (bad, response.text)
        answer = response.json()
        assert answer["error"]["type"] == "invalid_prompt_id" and answer["node_errors"] == {}
    assert await list_ids(api, tenant) == []

    # A canonical one is accepted; the prompt gets Genway's own id, as before.
    body = {"prompt": invert_workflow(), "prompt_id": canonical}
    accepted = await api.post("/prompt", json=body, headers=tenant.headers)
    assert accepted.status_code == 200, accepted.text
    prompt_id = accepted.json()["prompt_id"]
    assert prompt_id != canonical and await list_ids(api, tenant) == [prompt_id]

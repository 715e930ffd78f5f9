"""ComfyUI jobs through Genway's job API, run on fake backends by the embedded worker: outputs,
progress, node and execution errors, cancellation, failover, load balancing, waiting for a
backend, and the txt2img template."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest

from genway.app import create_app
from genway.config import Settings
from genway.engines.comfyui.workflows import load_template
from tests.engines.comfyui.conftest import invert_workflow
from tests.engines.comfyui.helpers import (
    job_events,
    jobs_url,
    pixel,
    running_on,
    submit,
    wait_healthy,
    wait_job,
    wait_until,
)
from tests.fakes.comfyui import FakeComfyUI
from tests.support import Tenant, live_server, make_tenant

WORKFLOW = "comfy.workflow"


async def test_workflow_runs_with_progress_and_stored_outputs(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:  # long enough to report progress (at most every 0.5 s)
        backend.execution_time, backend.steps = 1.2, 12
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow("gw")})
    done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1, done
    result = done["result"]
    [artifact] = result["artifacts"]
    assert artifact["node_id"] == "3" and artifact["content_type"] == "image/png"
    assert artifact["name"] == f"gw_00001_-j{job['id']}.png"
    assert result["outputs"]["3"]["images"] == [
        {"filename": artifact["name"], "subfolder": "", "type": "output"}
    ]
    # Genway's own prompt id went upstream, with a per-job client id.
    sent = next(body for b in backends for body in b.received)
    assert sent["prompt_id"] == result["prompt_id"]
    assert sent["client_id"].startswith(f"genway-{job['id']}-1-")

    events = await job_events(api, tenant, job["id"])
    assert [e["data"]["status"] for e in events if e["type"] == "status"] == [
        "queued",
        "running",
        "succeeded",
    ]
    progress = [e["data"]["progress"] for e in events if e["type"] == "progress"]
    assert progress and progress == sorted(progress) and all(0 < p < 1 for p in progress)
    relayed = [
        m["type"]
        for e in events
        if e["type"] == "output" and e["data"]["name"] == "comfyui.messages"
        for m in e["data"]["messages"]
    ]
    assert {"execution_start", "execution_cached", "executing", "executed"} <= set(relayed)

    stored = await api.get(artifact["url"], headers=tenant.headers)
    assert stored.status_code == 200 and stored.headers["content-type"] == "image/png"
    assert pixel(stored.content) == (255, 255, 255)  # EmptyImage black, inverted
    listed = await api.get(f"{jobs_url(tenant)}/{job['id']}/artifacts", headers=tenant.headers)
    signed = listed.json()["items"][0]["signed_url"]
    async with httpx.AsyncClient() as browser:  # no credentials at all
        fetched = await browser.get(signed)
    assert fetched.status_code == 200 and fetched.content == stored.content
    legacy = await api.get(f"/api/v1/jobs/{job['id']}/result", headers=tenant.headers)
    assert legacy.headers["content-type"] == "image/png" and legacy.content == stored.content


async def test_node_errors_and_execution_errors_fail_the_job_with_details(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        backend.fail_next_submit()
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow()})
    done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1
    error = done["error"]
    assert error["code"] == "node_errors"
    assert error["details"]["1"]["class_type"] == "EmptyImage"
    assert error["details"]["1"]["errors"][0]["type"] == "custom_validation_failed"
    assert "Prompt outputs failed validation" in error["message"]

    for backend in backends:
        backend.next_submit_failure = None
        backend.fail_next_execution("boom", node_id="2", exception_type="RuntimeError")
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow()})
    done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "failed" and done["attempts"] == 1
    assert done["error"]["code"] == "execution_error"
    details = done["error"]["details"]
    assert details["node_id"] == "2" and details["node_type"] == "ImageInvert"
    assert details["message"] == "boom" and details["exception_type"] == "RuntimeError"


async def test_cancel_interrupts_the_prompt_upstream(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        backend.execution_time, backend.steps = 30.0, 300
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow()})
    await wait_until(lambda: running_on(backends) is not None, "the prompt to start upstream")
    backend = running_on(backends)
    assert backend is not None
    prompt_id = backend.running.prompt_id  # type: ignore[union-attr]
    cancel = await api.post(f"{jobs_url(tenant)}/{job['id']}/cancel", headers=tenant.headers)
    assert cancel.status_code == 200
    done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "cancelled"
    # The 30 s prompt stops upstream at once (its history entry is then erased by Genway).
    await wait_until(
        lambda: backend.running is None or backend.running.prompt_id != prompt_id,
        "the backend to stop the prompt",
    )


async def test_a_dropped_websocket_falls_back_to_polling_history(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        backend.execution_time, backend.steps = 0.6, 30
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow("drop")})
    await wait_until(lambda: running_on(backends) is not None, "the prompt to start upstream")
    backend = running_on(backends)
    assert backend is not None
    await backend.drop_websockets()
    done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1
    assert done["result"]["artifacts"][0]["name"].startswith("drop_")
    logs = [
        e["data"]["text"] for e in await job_events(api, tenant, job["id"]) if e["type"] == "log"
    ]
    assert logs == ["Lost the ComfyUI WebSocket; following the prompt by polling"]


async def test_backend_dying_mid_job_is_retried_on_the_other_one(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        backend.execution_time, backend.steps = 0.6, 30
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow()})
    await wait_until(lambda: running_on(backends) is not None, "the prompt to start upstream")
    first = running_on(backends)
    assert first is not None
    other = next(backend for backend in backends if backend is not first)
    await first.die()
    done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 2, done
    assert other.prompt_count == 1
    assert other.received[-1]["prompt_id"] == done["result"]["prompt_id"]
    events = await job_events(api, tenant, job["id"])
    retry = [e for e in events if e["type"] == "status" and e["data"]["status"] == "queued"][-1]
    assert retry["data"]["error"]["code"] == "backend_unavailable"
    health = (await api.get("/health")).json()["engines"]["comfyui"]["backends"]
    assert {b["url"]: b["state"] for b in health}[first.base_url] == "unhealthy"


async def test_jobs_are_spread_over_the_shortest_queues(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        backend.pause()
    jobs = [await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow()}) for _ in range(4)]
    await wait_until(lambda: sum(b.queue_length for b in backends) == 4, "4 queued prompts")
    # Usually 2 and 2; a health check landing between a pick and its prompt's arrival can
    # make it 3 and 1, never 4 and 0.
    assert min(backend.queue_length for backend in backends) >= 1
    for backend in backends:
        backend.unpause()
    for job in jobs:
        assert (await wait_job(api, tenant, job["id"]))["status"] == "succeeded"


async def test_jobs_wait_without_spending_attempts_while_every_backend_is_down(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        await backend.die()
    health = await wait_healthy(api, 0)
    assert health["status"] == "degraded", health
    assert [b["state"] for b in health["engines"]["comfyui"]["backends"]] == ["unhealthy"] * 2
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow()}, max_attempts=1)
    for _ in range(5):  # several deferral rounds
        seen = await wait_job(api, tenant, job["id"], {"queued", "running"})
        assert seen["attempts"] <= 1 and seen["error"] is None
        await asyncio.sleep(0.1)
    await backends[1].revive()
    done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "succeeded" and done["attempts"] == 1
    reasons = [
        e["data"]["reason"]
        for e in await job_events(api, tenant, job["id"])
        if e["type"] == "status" and e["data"]["status"] == "queued"
    ]
    assert any("deferred: no healthy ComfyUI backend" in reason for reason in reasons)
    assert (await api.get("/health")).json()["status"] == "ok"


async def test_generate_renders_the_template_and_legacy_generate_waits(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    body = {"prompt": "a red fox", "negative_prompt": "blur", "width": 64, "height": 64}
    response = await api.post(
        "/api/v1/generate", json={**body, "steps": 2, "seed": 7}, headers=tenant.headers
    )
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["status"] == "succeeded" and answer["image_url"].startswith("http")
    async with httpx.AsyncClient() as browser:
        image = await browser.get(answer["image_url"])
    assert image.status_code == 200 and image.headers["content-type"] == "image/png"
    sent = next(body for b in backends for body in b.received)["prompt"]
    texts = {node["inputs"]["text"] for node in sent.values() if "text" in node["inputs"]}
    assert texts == {"a red fox", "blur"}
    assert sent["3"]["inputs"]["seed"] == 7 and sent["5"]["inputs"]["width"] == 64

    bad = await api.post("/api/v1/generate", json={**body, "width": 63}, headers=tenant.headers)
    assert bad.status_code == 422 and bad.json()["detail"][0]["loc"][-1] == "width"
    missing = await api.post("/api/v1/generate", json={"steps": 2}, headers=tenant.headers)
    assert missing.status_code == 422

    for backend in backends:
        backend.pause()
    slow = await api.post("/api/v1/generate", json=body, headers=tenant.headers)
    assert slow.status_code == 202 and slow.json()["status_url"].startswith("/api/v1/jobs/")


async def test_a_configured_template_is_used_and_a_broken_one_refused(
    settings: Settings, backends: list[FakeComfyUI], tmp_path: Path
):
    template = load_template("txt2img")
    template["9"]["inputs"]["filename_prefix"] = "house-style"
    path = tmp_path / "txt2img.json"
    path.write_text(json.dumps(template))
    custom = settings.model_copy(update={"comfyui_txt2img_template": path})
    app = create_app(custom)  # the only app (and worker) on this database in this test
    async with live_server(app) as url, httpx.AsyncClient(base_url=url) as api:
        tenant = await make_tenant(app.state.db)
        await wait_healthy(api, 2)
        job = await submit(
            api, tenant, "comfy.generate", {"prompt": "x", "width": 64, "height": 64}
        )
        done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "succeeded"
    assert done["result"]["artifacts"][0]["name"].startswith("house-style_")

    path.write_text(json.dumps({"1": {"class_type": "SaveImage", "inputs": {}}}))
    broken = create_app(custom)
    with pytest.raises(ValueError, match="txt2img template"):
        async with broken.router.lifespan_context(broken):
            pass

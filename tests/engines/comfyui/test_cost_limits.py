"""Per-tier bounds on a ComfyUI workflow's cost (issue 17, finding 5): nodes and pixels refused at
submission on every dialect, execution time interrupted on the backend, `limit_exceeded`."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from genway.config import Settings
from genway.db import Database
from genway.orgs.models import Tier
from tests.engines.comfyui.conftest import invert_workflow
from tests.engines.comfyui.helpers import jobs_url, wait_healthy, wait_job, wait_until
from tests.fakes.comfyui import FakeComfyUI
from tests.fakes.comfyui_nodes import DEFAULT_CHECKPOINTS
from tests.support import Tenant, make_tenant

FREE_MAX_PIXELS = 2048 * 2048
CHECKPOINT = DEFAULT_CHECKPOINTS[0]
# Through GENWAY_TIER_LIMITS: basic gets small node (txt2img's 7) and pixel limits, pro a 1 s
# execution limit.
TIER_LIMITS = {
    "basic": {"workflow_max_nodes": 7, "workflow_max_pixels": 512 * 512},
    "pro": {"workflow_max_seconds": 1},
}


@pytest.fixture
def settings(settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("GENWAY_TIER_LIMITS", json.dumps(TIER_LIMITS))
    return settings.model_copy(update={"tier_limits": Settings().tier_limits})


def blurred(width: int, height: int, batch: int) -> dict[str, Any]:
    """The probe's workflow: EmptyImage -> ImageBlur (r=31) -> ImageBlur -> SaveImage."""
    blur = {"blur_radius": 31, "sigma": 10.0}
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": batch, "color": 0},
        },
        "2": {"class_type": "ImageBlur", "inputs": {"image": ["1", 0], **blur}},
        "3": {"class_type": "ImageBlur", "inputs": {"image": ["2", 0], **blur}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "b"}},
    }


def chain(nodes: int) -> dict[str, Any]:
    """A workflow of `nodes` nodes: a tiny EmptyImage, inverted again and again, saved."""
    workflow: dict[str, Any] = {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": 8, "height": 8, "batch_size": 1, "color": 0},
        }
    }
    for n in range(2, nodes):
        workflow[str(n)] = {"class_type": "ImageInvert", "inputs": {"image": [str(n - 1), 0]}}
    workflow[str(nodes)] = {
        "class_type": "SaveImage",
        "inputs": {"images": [str(nodes - 1), 0], "filename_prefix": "chain"},
    }
    return workflow


def decoded(width: int, height: int, batch: int) -> dict[str, Any]:
    """An empty latent of that size, decoded and saved."""
    return {
        "1": {
            "class_type": "EmptyLatentImage",
            "inputs": {"width": width, "height": height, "batch_size": batch},
        },
        "2": {"class_type": "CheckpointLoaderSimple", "inputs": {"ckpt_name": CHECKPOINT}},
        "3": {"class_type": "VAEDecode", "inputs": {"samples": ["1", 0], "vae": ["2", 2]}},
        "4": {"class_type": "SaveImage", "inputs": {"images": ["3", 0], "filename_prefix": "d"}},
    }


def workflow_job(workflow: dict[str, Any]) -> dict[str, Any]:
    return {"kind": "comfy.workflow", "input": {"workflow": workflow}}


def pause(backends: list[FakeComfyUI]) -> None:
    """Keep accepted prompts pending upstream: the tests only need them accepted."""
    for backend in backends:
        backend.pause()


async def tenant_of(db: Database, tier: Tier) -> Tenant:
    return await make_tenant(db, tier=tier)


async def test_free_tier_prompt_over_a_limit_gets_comfyuis_400(
    api: httpx.AsyncClient, db: Database, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    free = await tenant_of(db, Tier.FREE)
    for path in ("/prompt", "/api/prompt"):
        big = await api.post(path, json={"prompt": blurred(2048, 2048, 4)}, headers=free.headers)
        assert big.status_code == 400, big.text
        error = big.json()["error"]
        assert error["type"] == "limit_exceeded"
        assert "workflow_max_pixels" in error["message"] and "free tier" in error["message"]
        assert error["extra_info"] == {
            "limit": "workflow_max_pixels",
            "value": 2048 * 2048 * 4,
            "maximum": FREE_MAX_PIXELS,
            "tier": "free",
            "node_id": "1",
            "node_type": "EmptyImage",
        }
        assert big.json()["node_errors"]["1"]["errors"][0]["type"] == "limit_exceeded"

        many = await api.post(path, json={"prompt": chain(51)}, headers=free.headers)
        assert many.status_code == 400, many.text
        error = many.json()["error"]
        assert error["type"] == "limit_exceeded" and "workflow_max_nodes" in error["message"]
        assert error["extra_info"]["value"] == 51 and error["extra_info"]["maximum"] == 50
    assert all(backend.prompt_count == 0 for backend in backends)
    queue = (await api.get("/queue", headers=free.headers)).json()
    assert queue == {"queue_running": [], "queue_pending": []}

    pause(backends)
    at_limit = await api.post("/prompt", json={"prompt": chain(50)}, headers=free.headers)
    assert at_limit.status_code == 200, at_limit.text


async def test_free_tier_jobs_over_a_limit_get_422_limit_exceeded(
    api: httpx.AsyncClient, db: Database, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    free = await tenant_of(db, Tier.FREE)
    for url in (jobs_url(free), "/api/v1/jobs"):
        big = await api.post(url, json=workflow_job(blurred(2048, 2048, 4)), headers=free.headers)
        assert big.status_code == 422, big.text
        body = big.json()
        assert body["code"] == "limit_exceeded" and body["limit"] == "workflow_max_pixels"
        assert (body["value"], body["maximum"], body["tier"]) == (
            2048 * 2048 * 4,
            FREE_MAX_PIXELS,
            "free",
        )
        assert "workflow_max_pixels" in body["message"] and "free tier" in body["message"]
        many = await api.post(url, json=workflow_job(chain(51)), headers=free.headers)
        assert many.status_code == 422, many.text
        assert many.json()["code"] == "limit_exceeded"
        assert (many.json()["limit"], many.json()["value"]) == ("workflow_max_nodes", 51)
    listed = (await api.get(jobs_url(free), headers=free.headers)).json()
    assert listed["items"] == []
    assert all(backend.prompt_count == 0 for backend in backends)

    pause(backends)
    # A latent's pixels count too: 2048 x 1024 x 2 is the free tier's whole budget, not more.
    within = await api.post(
        jobs_url(free), json=workflow_job(decoded(2048, 1024, 2)), headers=free.headers
    )
    assert within.status_code == 201, within.text
    over = await api.post(
        jobs_url(free), json=workflow_job(decoded(2056, 1024, 2)), headers=free.headers
    )
    assert over.status_code == 422, over.text
    assert (over.json()["node_id"], over.json()["node_type"]) == ("1", "EmptyLatentImage")


async def test_enterprise_accepts_the_same_workflows(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    pause(backends)
    for workflow in (blurred(2048, 2048, 4), chain(51)):
        prompt = await api.post("/prompt", json={"prompt": workflow}, headers=tenant.headers)
        assert prompt.status_code == 200, prompt.text
        job = await api.post(jobs_url(tenant), json=workflow_job(workflow), headers=tenant.headers)
        assert job.status_code == 201, job.text


async def test_tier_limits_setting_overrides_the_defaults(
    api: httpx.AsyncClient, db: Database, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    basic = await tenant_of(db, Tier.BASIC)  # 100 nodes and 8 MP by default; 7 and 512² here
    pause(backends)
    eight = await api.post(jobs_url(basic), json=workflow_job(chain(8)), headers=basic.headers)
    assert eight.status_code == 422, eight.text
    assert (eight.json()["limit"], eight.json()["maximum"]) == ("workflow_max_nodes", 7)
    small = await api.post(
        jobs_url(basic), json=workflow_job(invert_workflow()), headers=basic.headers
    )
    assert small.status_code == 201, small.text

    image = {"prompt": "a lighthouse", "width": 1024, "height": 1024}
    generate = await api.post("/api/v1/generate", json=image, headers=basic.headers)
    assert generate.status_code == 422, generate.text
    assert generate.json()["code"] == "limit_exceeded"
    assert (generate.json()["value"], generate.json()["maximum"]) == (1024 * 1024, 512 * 512)

    # Whatever admission a route has, the worker checks again before a backend sees the job.
    job = await api.post(
        jobs_url(basic), json={"kind": "comfy.generate", "input": image}, headers=basic.headers
    )
    if job.status_code == 201:  # comfy.generate has no admission on the jobs API yet
        failed = await wait_job(api, basic, job.json()["id"])
        assert failed["status"] == "failed"
        assert failed["error"]["code"] == "limit_exceeded", failed["error"]
        assert failed["error"]["details"]["limit"] == "workflow_max_pixels"
    else:
        assert job.status_code == 422 and job.json()["code"] == "limit_exceeded", job.text
    sent = [json.dumps(body) for backend in backends for body in backend.received]
    assert not any("a lighthouse" in body for body in sent)


async def test_a_workflow_past_its_time_limit_is_interrupted_on_its_backend(
    api: httpx.AsyncClient, db: Database, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    pro = await tenant_of(db, Tier.PRO)  # workflow_max_seconds: 1
    for backend in backends:
        backend.execution_time, backend.steps = 30.0, 300
    queued = await api.post("/prompt", json={"prompt": invert_workflow()}, headers=pro.headers)
    assert queued.status_code == 200, queued.text
    prompt_id, number = queued.json()["prompt_id"], queued.json()["number"]

    job = await wait_job(api, pro, number)
    assert job["status"] == "failed"
    assert job["error"]["code"] == "limit_exceeded"
    assert "workflow_max_seconds" in job["error"]["message"]
    assert job["error"]["details"] == {"limit": "workflow_max_seconds", "maximum": 1, "tier": "pro"}
    backend = next(b for b in backends if b.received)
    assert backend.interrupts == [prompt_id]
    # It would run for 30 s more; interrupted, it stops at the next sampler step.
    await wait_until(lambda: backend.running is None, "the backend to stop the prompt")

    history = (await api.get(f"/history/{prompt_id}", headers=pro.headers)).json()[prompt_id]
    error = history["status"]["messages"][-1]
    assert error[0] == "execution_error" and error[1]["exception_type"] == "limit_exceeded"


async def test_time_waiting_on_the_backend_is_not_execution_time(
    api: httpx.AsyncClient, db: Database, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    pro = await tenant_of(db, Tier.PRO)  # workflow_max_seconds: 1
    pause(backends)
    queued = await api.post(
        jobs_url(pro), json=workflow_job(invert_workflow()), headers=pro.headers
    )
    assert queued.status_code == 201, queued.text
    await wait_until(lambda: any(b.pending for b in backends), "the prompt to wait upstream")
    await asyncio.sleep(1.5)  # longer than the limit, all of it pending on the backend
    for backend in backends:
        backend.unpause()
    job = await wait_job(api, pro, queued.json()["id"])
    assert job["status"] == "succeeded", job["error"]
    assert all(not backend.interrupts for backend in backends)

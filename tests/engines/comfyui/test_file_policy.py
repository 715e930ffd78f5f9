"""The file policy through Genway's API with fake backends (fast; the same attacks against the
real ComfyUI are in real/): refusals on every dialect, own files staged per job and erased
after it, errors that name backend files withheld, and the administrator's node policy."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from genway.config import Settings
from genway.engines.comfyui.inputs import job_folder
from tests.engines.comfyui.conftest import invert_workflow
from tests.engines.comfyui.helpers import (
    basic,
    jobs_url,
    png,
    submit,
    wait_healthy,
    wait_history,
    wait_job,
    wait_until,
)
from tests.fakes.comfyui import FakeComfyUI
from tests.support import Tenant

WORKFLOW = "comfy.workflow"


def load_image(value: Any) -> dict[str, Any]:
    return {
        "1": {"class_type": "LoadImage", "inputs": {"image": value}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "b"}},
        "4": {"class_type": "EmptyImage", "inputs": {"width": 8, "height": 8}},
    }


def refusal(response: httpx.Response, node_id: str) -> list[dict[str, Any]]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    return list(body["node_errors"][node_id]["errors"])


async def dialects(
    api: httpx.AsyncClient, tenant: Tenant, workflow: dict[str, Any]
) -> list[httpx.Response]:
    """The same workflow on the ComfyUI-compatible API, the jobs API and the legacy job API."""
    job = {"kind": WORKFLOW, "input": {"workflow": workflow}}
    return [
        await api.post("/prompt", json={"prompt": workflow}, headers=basic(tenant.key)),
        await api.post(jobs_url(tenant), json=job, headers=tenant.headers),
        await api.post("/api/v1/jobs", json=job, headers=tenant.headers),
    ]


@pytest.mark.parametrize(
    "value",
    [
        {"__value__": "../secret_00001_.png"},
        "../secret_00001_.png",
        "/etc/passwd",
        "secret_00001_.png [output]",
        "genway/0123/abc.png",
        ["4", 0],
    ],
)
async def test_image_inputs_naming_anything_but_own_files_are_refused_everywhere(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI], value: Any
):
    await wait_healthy(api, 2)
    for response in await dialects(api, tenant, load_image(value)):
        assert refusal(response, "1")
    assert all(backend.prompt_count == 0 for backend in backends)


async def test_another_organizations_output_cannot_be_loaded(
    api: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow("alphasecret")})
    done = await wait_job(api, tenant, job["id"])
    name = done["result"]["outputs"]["3"]["images"][0]["filename"]
    for response in await dialects(api, other_tenant, load_image(f"{name} [output]")):
        errors = refusal(response, "1")
        assert errors[0]["type"] == "custom_validation_failed"
    # Its owner can load it back.
    own = await submit(api, tenant, WORKFLOW, {"workflow": load_image(f"{name} [output]")})
    assert (await wait_job(api, tenant, own["id"]))["status"] == "succeeded"


@pytest.mark.parametrize("prefix", ["../../x", "/abs/x", "a/../b", "c:x", "a\\b", ""])
async def test_output_prefixes_must_stay_inside_the_job(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI], prefix: str
):
    await wait_healthy(api, 2)
    for response in await dialects(api, tenant, invert_workflow(prefix)):
        [error] = refusal(response, "3")
        assert error["extra_info"] == {"input_name": "filename_prefix"}


async def test_refusals_need_no_backend(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    for backend in backends:
        await backend.die()
    for response in await dialects(api, tenant, load_image({"__value__": "../x.png"})):
        assert refusal(response, "1")


async def test_a_job_runs_in_a_folder_of_its_own_and_leaves_nothing_behind(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    headers = basic(tenant.key)
    files = {"image": ("mine.png", png((10, 20, 30)), "image/png")}
    assert (await api.post("/upload/image", files=files, headers=headers)).status_code == 200
    workflow = load_image("mine.png")
    workflow["3"]["inputs"]["filename_prefix"] = "sub/mine"
    answer = await api.post("/prompt", json={"prompt": workflow}, headers=headers)
    prompt_id = answer.json()["prompt_id"]
    entry = await wait_history(api, prompt_id, headers)
    assert entry["status"]["status_str"] == "success"
    image = entry["outputs"]["3"]["images"][0]
    assert image["subfolder"] == "sub" and image["filename"].startswith("mine_")

    [backend] = [b for b in backends if any(r["prompt_id"] == prompt_id for r in b.received)]
    sent = next(r for r in backend.received if r["prompt_id"] == prompt_id)["prompt"]
    folder = job_folder(prompt_id)
    assert sent["1"]["inputs"]["image"].startswith(folder + "/")
    assert sent["3"]["inputs"]["filename_prefix"] == f"{folder}/sub/mine"

    def left() -> list[Path]:
        return [
            path
            for root in (backend.folders.input / folder, backend.folders.output / folder)
            for path in Path(root).rglob("*")
            if path.is_file()
        ]

    # Erased just after the job ended: emptied files, and no history on the backend.
    await wait_until(
        lambda: (
            left()
            and all(path.stat().st_size == 0 for path in left())
            and prompt_id not in backend.history
        ),
        "the job's files to be erased on the backend",
    )


async def test_backend_errors_naming_files_are_withheld(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    for backend in backends:
        backend.fail_next_execution("[Errno 2] No such file: '/srv/comfy/input/genway/x/a.png'")
    job = await submit(api, tenant, WORKFLOW, {"workflow": invert_workflow()})
    done = await wait_job(api, tenant, job["id"])
    assert done["status"] == "failed" and done["error"]["code"] == "execution_error"
    assert "/srv" not in json.dumps(done) and "genway/x" not in json.dumps(done)
    assert done["error"]["details"]["node_type"] == "SaveImage"


@pytest.fixture
def settings(settings: Settings, tmp_path: Path) -> Settings:
    policy = tmp_path / "node-policy.json"
    policy.write_text(json.dumps({"allow": [], "deny": ["ImageBlur"]}))
    return settings.model_copy(update={"comfyui_node_policy": policy})


async def test_an_administrator_can_deny_a_node_class(
    api: httpx.AsyncClient, tenant: Tenant, backends: list[FakeComfyUI]
):
    await wait_healthy(api, 2)
    workflow = invert_workflow()
    workflow["2"] = {
        "class_type": "ImageBlur",
        "inputs": {"image": ["1", 0], "blur_radius": 1, "sigma": 1.0},
    }
    workflow["3"]["inputs"]["images"] = ["2", 0]
    for response in await dialects(api, tenant, workflow):
        [error] = refusal(response, "2")
        assert "not allowed" in error["details"]

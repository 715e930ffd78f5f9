"""Tenant isolation of files on a shared, real ComfyUI (the attacks of the isolation issue):
another organization's outputs and uploads, Genway's staging folder and the backend host's
files cannot be read through any dialect, while an organization's own files work."""

from __future__ import annotations

import asyncio
from typing import Any

import httpx
import pytest

from tests.engines.comfyui.conftest import invert_workflow
from tests.engines.comfyui.helpers import (
    basic,
    jobs_url,
    pixel,
    png,
    submit,
    wait_healthy,
    wait_history,
    wait_job,
)
from tests.real_comfyui import RealComfyUI
from tests.support import Tenant

pytestmark = pytest.mark.slow

WORKFLOW = "comfy.workflow"


def load_and_save(loader: dict[str, Any], prefix: str = "bsteal") -> dict[str, Any]:
    return {
        "1": loader,
        "2": {"class_type": "SaveImage", "inputs": {"images": ["1", 0], "filename_prefix": prefix}},
    }


async def run_secret(api: httpx.AsyncClient, owner: Tenant, backend: RealComfyUI) -> dict[str, Any]:
    """Organization A makes an output named like the issue's `alphasecret_00001_.png`; returns
    once the backend's copy is erased (that happens just after the job ends, off its path), so
    the backend's files stay as they are while the attacks run."""
    await wait_healthy(api, 1)
    job = await submit(api, owner, WORKFLOW, {"workflow": invert_workflow("alphasecret")})
    done = await wait_job(api, owner, job["id"])
    assert done["status"] == "succeeded", done
    folder = backend.output_dir / "genway" / done["result"]["prompt_id"]
    for _ in range(200):
        files = backend.files_under(folder)
        if files and set(files.values()) == {0}:
            return done
        await asyncio.sleep(0.05)
    raise AssertionError(f"the backend's copy was not erased: {files}")


def assert_refused(response: httpx.Response, node_id: str = "1") -> dict[str, Any]:
    assert response.status_code == 400, response.text
    body = response.json()
    assert body["error"]["type"] == "prompt_outputs_failed_validation"
    assert node_id in body["node_errors"], body
    return dict(body)


async def post_prompt(api: httpx.AsyncClient, tenant: Tenant, prompt: dict[str, Any]) -> Any:
    return await api.post("/prompt", json={"prompt": prompt}, headers=basic(tenant.key))


async def post_job(api: httpx.AsyncClient, tenant: Tenant, prompt: dict[str, Any]) -> Any:
    body = {"kind": WORKFLOW, "input": {"workflow": prompt}}
    return await api.post(jobs_url(tenant), json=body, headers=tenant.headers)


ATTACKS = {
    "another tenant's output by backend name": lambda secret: {
        "class_type": "LoadImageOutput",
        "inputs": {"image": f"{secret['backend_name']} [output]"},
    },
    "another tenant's output by Genway name": lambda secret: {
        "class_type": "LoadImageOutput",
        "inputs": {"image": f"{secret['genway_name']} [output]"},
    },
    "another tenant's output through LoadImage": lambda secret: {
        "class_type": "LoadImage",
        "inputs": {"image": f"{secret['backend_name']} [output]"},
    },
    "the staging folder of every tenant": lambda _secret: {
        "class_type": "LoadImageSetFromFolderNode",
        "inputs": {"folder": "genway", "resize_method": "Stretch"},
    },
    "a wrapped traversal": lambda secret: {
        "class_type": "LoadImage",
        "inputs": {"image": {"__value__": f"../{secret['backend_name']}"}},
    },
    "a host file": lambda _secret: {
        "class_type": "LoadImageOutput",
        "inputs": {"image": "/etc/passwd"},
    },
}


@pytest.mark.parametrize("attack", list(ATTACKS))
async def test_attacks_are_refused_on_every_dialect(
    api: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    real_comfyui: RealComfyUI,
    attack: str,
):
    done = await run_secret(api, tenant, real_comfyui)
    image = done["result"]["outputs"]["3"]["images"][0]
    backend_files = [p for p in real_comfyui.output_dir.rglob("alphasecret_*") if p.is_file()]
    secret = {"genway_name": image["filename"], "backend_name": backend_files[-1].name}
    node = ATTACKS[attack](secret)
    before = dict(real_comfyui.files_under(real_comfyui.output_dir))

    assert_refused(await post_prompt(api, other_tenant, load_and_save(node)))
    assert_refused(await post_job(api, other_tenant, load_and_save(node)))
    assert_refused(await api.post("/api/prompt", json={"prompt": load_and_save(node)},
                                  headers=basic(other_tenant.key)))  # fmt: skip
    # Nothing ran: no new file on the backend, no job of B's.
    assert real_comfyui.files_under(real_comfyui.output_dir) == before
    jobs = (await api.get(jobs_url(other_tenant), headers=other_tenant.headers)).json()
    assert jobs["items"] == []


async def test_host_paths_that_exist_and_do_not_are_refused_alike(
    api: httpx.AsyncClient, other_tenant: Tenant, real_comfyui: RealComfyUI
):
    await wait_healthy(api, 1)
    answers = []
    for path in ("/etc/passwd", "/etc/nonexistent-genway"):
        node = {"class_type": "LoadImageOutput", "inputs": {"image": path}}
        body = assert_refused(await post_prompt(api, other_tenant, load_and_save(node)))
        answers.append(str(body["node_errors"]).replace(path, "PATH"))
    assert answers[0] == answers[1]


@pytest.mark.parametrize("prefix", ["../../x", "/tmp/x", "a/../../x", "..", "a\\..\\x"])
async def test_output_prefixes_outside_the_job_are_refused(
    api: httpx.AsyncClient, tenant: Tenant, real_comfyui: RealComfyUI, prefix: str
):
    await wait_healthy(api, 1)
    workflow = invert_workflow(prefix)
    assert_refused(await post_prompt(api, tenant, workflow), "3")
    assert_refused(await post_job(api, tenant, workflow), "3")


async def test_custom_nodes_with_file_inputs_are_refused_unless_allowed(
    api: httpx.AsyncClient, tenant: Tenant, real_comfyui: RealComfyUI
):
    await wait_healthy(api, 1)
    read = {"1": {"class_type": "GenwayProbeReadFile", "inputs": {"path": "/etc/hostname"}}}
    body = assert_refused(await post_prompt(api, tenant, read))
    assert "GENWAY_COMFYUI_NODE_POLICY" in body["node_errors"]["1"]["errors"][0]["details"]
    assert_refused(await post_job(api, tenant, read))


async def test_an_organizations_own_uploads_and_outputs_work_and_leave_nothing_behind(
    api: httpx.AsyncClient, tenant: Tenant, real_comfyui: RealComfyUI
):
    await wait_healthy(api, 1)
    headers = basic(tenant.key)
    files = {"image": ("own.png", png((200, 10, 10), (8, 6)), "image/png")}
    uploaded = (await api.post("/upload/image", files=files, headers=headers)).json()
    workflow = {
        "1": {"class_type": "LoadImage", "inputs": {"image": uploaded["name"]}},
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": "own"}},
    }
    answer = await api.post("/prompt", json={"prompt": workflow}, headers=headers)
    assert answer.status_code == 200, answer.text
    prompt_id = answer.json()["prompt_id"]
    entry = await wait_history(api, prompt_id, headers)
    assert entry["status"]["status_str"] == "success", entry
    image = entry["outputs"]["3"]["images"][0]
    assert image["subfolder"] == "" and image["filename"].startswith("own_")
    view = await api.get("/view", params=image, headers=headers)
    # Inverted in float32 by torch: 255 - 200 may come back as 54.
    assert all(abs(a - b) <= 1 for a, b in zip(pixel(view.content), (55, 245, 245), strict=True))

    # Its own output, read back through LoadImageOutput, works too.
    again = load_and_save(
        {"class_type": "LoadImageOutput", "inputs": {"image": f"{image['filename']} [output]"}},
        "again",
    )
    second = await post_job(api, tenant, again)
    assert second.status_code == 201, second.text
    done = await wait_job(api, tenant, second.json()["id"])
    assert done["status"] == "succeeded", done

    # The backend keeps nothing of either job (erased just after each ended): files emptied,
    # history forgotten.
    for pid in (prompt_id, done["result"]["prompt_id"]):
        folders = (
            real_comfyui.output_dir / "genway" / pid,
            real_comfyui.input_dir / "genway" / pid,
        )
        async with httpx.AsyncClient(base_url=real_comfyui.url) as direct:
            for _ in range(100):
                job_files = real_comfyui.files_under(*folders)
                history = (await direct.get(f"/history/{pid}")).json()
                if job_files and set(job_files.values()) == {0} and history == {}:
                    break
                await asyncio.sleep(0.05)
        assert job_files and set(job_files.values()) == {0}, job_files
        assert history == {}


async def test_object_info_shows_no_other_tenants_files(
    api: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, real_comfyui: RealComfyUI
):
    await run_secret(api, tenant, real_comfyui)
    info = (await api.get("/object_info", headers=basic(other_tenant.key))).json()
    assert info["LoadImage"]["input"]["required"]["image"][0] == []
    assert info["LoadImageSetFromFolderNode"]["input"]["required"]["folder"][0] == []
    text = str(info)
    assert "genway" not in text.replace("genway_probe", "") and "alphasecret" not in text

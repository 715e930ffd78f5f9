"""Helpers for tests of Genway's ComfyUI jobs and its ComfyUI-compatible API."""

from __future__ import annotations

import asyncio
import base64
import io
import json
from typing import Any

import httpx
from PIL import Image

from tests.fakes.comfyui import FakeComfyUI
from tests.support import Tenant

TERMINAL = {"succeeded", "failed", "cancelled"}


def jobs_url(tenant: Tenant) -> str:
    return f"/v1/organizations/{tenant.org_id}/jobs"


def basic(key: str, user: str = "comfy") -> dict[str, str]:
    token = base64.b64encode(f"{user}:{key}".encode()).decode()
    return {"Authorization": f"Basic {token}"}


def png(color: tuple[int, int, int] = (10, 20, 30), size: tuple[int, int] = (16, 12)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, color).save(buffer, format="PNG")
    return buffer.getvalue()


def pixel(data: bytes) -> tuple[int, ...]:
    with Image.open(io.BytesIO(data)) as image:
        return tuple(image.convert("RGB").getpixel((0, 0)))  # type: ignore[arg-type]


async def submit(
    api: httpx.AsyncClient, tenant: Tenant, kind: str, job_input: dict[str, Any], **options: Any
) -> dict[str, Any]:
    body = {"kind": kind, "input": job_input, **options}
    response = await api.post(jobs_url(tenant), json=body, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def wait_job(
    api: httpx.AsyncClient, tenant: Tenant, job_id: int, statuses: set[str] = TERMINAL
) -> dict[str, Any]:
    job: dict[str, Any] = {}
    for _ in range(400):
        job = (await api.get(f"{jobs_url(tenant)}/{job_id}", headers=tenant.headers)).json()
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


async def job_events(api: httpx.AsyncClient, tenant: Tenant, job_id: int) -> list[dict[str, Any]]:
    """Every event of a job that has ended (the SSE stream closes after the last one)."""
    events = []
    url = f"{jobs_url(tenant)}/{job_id}/events"
    async with api.stream("GET", url, headers=tenant.headers) as response:
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


async def wait_until(condition: Any, what: str) -> None:
    for _ in range(400):
        if condition():
            return
        await asyncio.sleep(0.025)
    raise AssertionError(f"timed out waiting for {what}")


def running_on(backends: list[FakeComfyUI]) -> FakeComfyUI | None:
    return next((backend for backend in backends if backend.running is not None), None)


async def wait_healthy(api: httpx.AsyncClient, count: int) -> dict[str, Any]:
    """Until /health reports `count` healthy ComfyUI backends; the health body."""
    body: dict[str, Any] = {}
    for _ in range(400):
        body = (await api.get("/health")).json()
        if body["engines"]["comfyui"]["healthy_backends"] == count:
            return body
        await asyncio.sleep(0.025)
    raise AssertionError(f"never saw {count} healthy backends: {body}")


async def wait_history(
    api: httpx.AsyncClient, prompt_id: str, headers: dict[str, str], prefix: str = ""
) -> dict[str, Any]:
    """Poll `/history/{prompt_id}` as a client without a WebSocket does; the entry."""
    for _ in range(400):
        entry = (await api.get(f"{prefix}/history/{prompt_id}", headers=headers)).json()
        if entry:
            return dict(entry[prompt_id])
        await asyncio.sleep(0.05)
    raise AssertionError(f"prompt {prompt_id} never reached the history")

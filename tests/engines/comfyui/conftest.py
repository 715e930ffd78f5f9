"""Fixtures for the ComfyUI engine: a fake ComfyUI on 127.0.0.1 and a client with short timeouts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import httpx
import pytest

from genway.config import Settings
from genway.engines.comfyui.client import ComfyUIClient, SubmittedPrompt, WatchEvent
from tests.fakes.comfyui import FakeComfyUI


@pytest.fixture
async def fake(tmp_path: Path) -> AsyncIterator[FakeComfyUI]:
    async with FakeComfyUI(tmp_path / "comfyui", execution_time=0.1) as server:
        yield server


def make_client(base_url: str, **options: Any) -> ComfyUIClient:
    settings: dict[str, Any] = {
        "timeout": 2.0,
        "connect_timeout": 1.0,
        "poll_interval": 0.02,
        "liveness_interval": 0.5,
        "max_poll_failures": 3,
    }
    return ComfyUIClient(base_url, **(settings | options))


@pytest.fixture
async def client(fake: FakeComfyUI) -> AsyncIterator[ComfyUIClient]:
    async with make_client(fake.base_url) as comfy:
        yield comfy


def new_client_id() -> str:
    return uuid.uuid4().hex


def invert_workflow(prefix: str = "test", *, width: int = 64, height: int = 48) -> dict[str, Any]:
    """The transcript's EmptyImage -> ImageInvert -> SaveImage workflow."""
    return {
        "1": {
            "class_type": "EmptyImage",
            "inputs": {"width": width, "height": height, "batch_size": 1, "color": 0},
        },
        "2": {"class_type": "ImageInvert", "inputs": {"image": ["1", 0]}},
        "3": {"class_type": "SaveImage", "inputs": {"images": ["2", 0], "filename_prefix": prefix}},
    }


OnEvent = Callable[[WatchEvent], Awaitable[None]]


async def run_workflow(
    client: ComfyUIClient,
    workflow: dict[str, Any],
    on_event: OnEvent | None = None,
) -> list[WatchEvent]:
    """Run to the end with `client.run`; `on_event` runs after each event (to inject faults)."""
    events: list[WatchEvent] = []
    async for event in client.run(workflow, new_client_id()):
        if isinstance(event, SubmittedPrompt):
            continue
        events.append(event)
        if on_event is not None:
            await on_event(event)
    return events


# Genway against fake backends: two fakes, and Genway's settings pointed at them with short
# health, polling and retry intervals. (`client` above is a ComfyUI client; Genway's HTTP
# client in these tests is `api`.)


@pytest.fixture
async def backends(tmp_path: Path) -> AsyncIterator[list[FakeComfyUI]]:
    servers = [FakeComfyUI(tmp_path / f"backend-{n}", execution_time=0.05) for n in (1, 2)]
    for server in servers:
        await server.start()
    yield servers
    for server in servers:
        await server.stop()


@pytest.fixture
def settings(settings: Settings, backends: list[FakeComfyUI]) -> Settings:
    return settings.model_copy(
        update={
            "embedded_worker": True,
            "worker_concurrency": 4,
            "comfyui_urls": [backend.base_url for backend in backends],
            "comfyui_health_interval_s": 0.1,
            "comfyui_backoff_max_s": 0.2,
            "comfyui_poll_interval_s": 0.05,
            "comfyui_timeout_s": 5.0,
            "retry_base_s": 0.05,
            "shutdown_grace_s": 0.5,
            "sync_wait_s": 1.0,
        }
    )


@pytest.fixture
async def api(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        yield http

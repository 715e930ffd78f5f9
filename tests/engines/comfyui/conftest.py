"""Fixtures for the ComfyUI engine: a fake ComfyUI on 127.0.0.1 and a client with short timeouts."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

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

"""Genway in front of the real ComfyUI (tests/real_comfyui.py): one server for the session."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from genway.config import Settings
from tests.real_comfyui import RealComfyUI, start_real_comfyui


@pytest.fixture(scope="session")
def real_comfyui(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RealComfyUI]:
    yield from start_real_comfyui(tmp_path_factory.mktemp("real-comfyui"))


@pytest.fixture
def backends() -> list[object]:
    return []  # no fakes here


@pytest.fixture
def settings(settings: Settings, real_comfyui: RealComfyUI, tmp_path: Path) -> Settings:
    return settings.model_copy(
        update={
            "comfyui_urls": [real_comfyui.url],
            "comfyui_poll_interval_s": 0.05,
            "comfyui_timeout_s": 10.0,
        }
    )

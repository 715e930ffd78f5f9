"""Sandbox fixtures: tests that need bubblewrap skip without it locally and fail in CI."""

from __future__ import annotations

import os
import uuid
from pathlib import Path

import pytest

from genway.sandbox import sandbox_unavailable_reason

IN_CI = os.environ.get("CI", "").lower() not in ("", "0", "false", "no")


@pytest.fixture
def sandbox() -> None:
    reason = sandbox_unavailable_reason()
    if reason is None:
        return
    if IN_CI:
        pytest.fail(f"the sandbox is required in CI: {reason}")
    pytest.skip(f"sandboxed commands cannot run here: {reason}")


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    path = tmp_path / "worktree"
    path.mkdir()
    return path


@pytest.fixture
def marker() -> str:
    """A `sleep` duration no other process uses, to find the command's processes in /proc."""
    return f"987.{uuid.uuid4().int % 10**6:06d}"


def processes_with(marker: str) -> list[int]:
    """Host processes whose command line contains `marker`."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            cmdline = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if marker.encode() in cmdline:
            found.append(int(entry.name))
    return found

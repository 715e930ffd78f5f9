"""Cancelling the awaiting task kills the sandbox before CancelledError propagates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from genway.sandbox import run_sandboxed
from genway.sandbox.cgroup import pids_parent
from tests.sandbox.conftest import processes_with

pytestmark = pytest.mark.usefixtures("sandbox")


async def test_cancelling_kills_the_process_tree(workdir: Path, marker: str) -> None:
    started = asyncio.Event()

    def on_output(_: str) -> None:
        started.set()

    task = asyncio.create_task(
        run_sandboxed(
            f"echo started; sleep {marker} & sleep {marker}", workdir=workdir, on_output=on_output
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    assert processes_with(marker) != []

    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task

    assert processes_with(marker) == []


async def test_cancelling_again_and_again_still_kills_everything(
    workdir: Path, marker: str
) -> None:
    """A worker hard-stops a job past its cancel grace by cancelling it on every tick: each
    cancellation landing in the middle of the cleanup must not cut it short (the command, or
    its cgroup, left behind)."""
    before = {p.name for p in pids_parent().iterdir() if p.is_dir()}
    started = asyncio.Event()
    task = asyncio.create_task(
        run_sandboxed(
            f"echo started; sleep {marker} & sleep {marker}",
            workdir=workdir,
            on_output=lambda _: started.set(),
        )
    )
    await asyncio.wait_for(started.wait(), 10)
    task.cancel()
    for _ in range(50):  # keep cancelling while it cleans up
        await asyncio.sleep(0)
        task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    assert processes_with(marker) == []
    left = {p.name for p in pids_parent().iterdir() if p.is_dir()} - before
    assert left == set()  # the cleanup ran to its end: the command's cgroup is gone

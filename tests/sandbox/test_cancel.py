"""Cancelling the awaiting task kills the sandbox before CancelledError propagates."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from genway.sandbox import run_sandboxed
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

"""Output: stdout and stderr interleaved, streamed while the command runs, capped."""

from __future__ import annotations

import time
from pathlib import Path

import pytest

from genway.sandbox import SandboxLimits, run_sandboxed

pytestmark = pytest.mark.usefixtures("sandbox")


async def test_output_streams_before_the_command_ends(workdir: Path) -> None:
    chunks: list[tuple[float, str]] = []

    async def record(text: str) -> None:
        chunks.append((time.monotonic(), text))

    result = await run_sandboxed(
        "echo first; sleep 1.5; echo second", workdir=workdir, on_output=record
    )
    ended = time.monotonic()

    assert chunks[0][1] == "first\n"
    assert ended - chunks[0][0] > 1.0
    assert "".join(text for _, text in chunks) == result.output == "first\nsecond\n"


async def test_stdout_and_stderr_are_interleaved(workdir: Path) -> None:
    result = await run_sandboxed("echo out; echo err >&2; echo out2", workdir=workdir)

    assert result.output == "out\nerr\nout2\n"


async def test_output_is_capped_while_the_command_finishes(workdir: Path) -> None:
    streamed: list[str] = []

    result = await run_sandboxed(
        "yes | head -c 1000000; echo finished > done.txt",
        workdir=workdir,
        limits=SandboxLimits(output_bytes=1000),
        on_output=streamed.append,
    )

    assert result.truncated
    assert result.output == "y\n" * 500
    assert "".join(streamed) == result.output
    assert result.exit_code == 0
    assert (workdir / "done.txt").read_text() == "finished\n"


async def test_a_character_cut_by_the_cap_is_dropped(workdir: Path) -> None:
    result = await run_sandboxed(
        "printf '\\303\\251\\303\\251\\303\\251'",
        workdir=workdir,
        limits=SandboxLimits(output_bytes=5),
    )

    assert (result.output, result.truncated) == ("éé", True)

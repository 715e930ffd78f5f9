"""Limits: wall clock, CPU, memory and the process count; nothing survives a killed sandbox."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from genway.sandbox import SandboxLimits, run_sandboxed
from tests.sandbox.conftest import processes_with

pytestmark = pytest.mark.usefixtures("sandbox")

FORK_UNTIL_REFUSED = """
import os, time
count = 0
try:
    while True:
        if os.fork() == 0:
            time.sleep(60)
            os._exit(0)
        count += 1
except OSError:
    print("forked", count, flush=True)
time.sleep(60)
"""


async def test_timeout_kills_everything(workdir: Path, marker: str) -> None:
    result = await run_sandboxed(
        f"echo started; sleep {marker} & sleep {marker}",
        workdir=workdir,
        limits=SandboxLimits(timeout_s=1),
    )

    assert (result.timed_out, result.killed, result.exit_code) == (True, "timeout", None)
    assert result.output == "started\n"
    assert result.duration_s < 5
    assert processes_with(marker) == []


async def test_memory_beyond_the_limit_fails(workdir: Path) -> None:
    script = "b = bytearray(32 << 20); print('small ok', flush=True); bytearray(512 << 20)"

    result = await run_sandboxed(
        f'python3 -c "{script}"; echo "exit $?"',
        workdir=workdir,
        limits=SandboxLimits(memory_bytes=256 << 20),
    )

    assert "small ok" in result.output
    assert "MemoryError" in result.output
    assert "exit 1" in result.output


async def test_cpu_time_is_limited(workdir: Path) -> None:
    result = await run_sandboxed(
        "python3 -c 'while True: pass'",
        workdir=workdir,
        limits=SandboxLimits(cpu_s=1, timeout_s=30),
    )

    assert not result.timed_out
    assert result.exit_code not in (0, None)
    assert result.duration_s < 15


async def test_process_limit_holds_for_root_and_kills_the_sandbox(workdir: Path) -> None:
    result = await run_sandboxed(
        f"python3 -c '{FORK_UNTIL_REFUSED}'",
        workdir=workdir,
        limits=SandboxLimits(max_processes=16, timeout_s=30),
    )

    assert result.killed == "processes"
    assert result.exit_code is None
    assert result.duration_s < 15
    if result.output:
        assert int(result.output.split()[1]) < 16


async def test_fork_bomb_is_contained(workdir: Path, marker: str) -> None:
    name = f"bomb_{marker.replace('.', '_')}"

    result = await run_sandboxed(
        f"{name}() {{ {name} | {name} & }}; {name}; sleep {marker}",
        workdir=workdir,
        limits=SandboxLimits(max_processes=64, timeout_s=10),
    )

    assert result.killed in ("processes", "timeout")
    assert result.duration_s < 15
    assert processes_with(marker) == []
    assert subprocess.run(["true"], check=False).returncode == 0

"""Run one untrusted shell command in a bubblewrap sandbox, with limits, and collect its output.

The process tree is `/bin/sh` (launcher: joins the cgroup, sets rlimits) exec'ing bwrap, whose
child is PID 1 of a fresh PID namespace. Killing bwrap makes `--die-with-parent` kill that PID 1,
and the kernel then kills every process in the namespace; the pids cgroup catches any straggler
and tells us when the process limit was hit.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from genway.sandbox.argv import bwrap_argv, checked_workdir, launcher_argv, sandbox_env
from genway.sandbox.availability import resolve_bwrap, sandbox_unavailable_reason
from genway.sandbox.cgroup import PidsCgroup, pids_parent
from genway.sandbox.errors import SandboxUnavailable
from genway.sandbox.limits import SandboxLimits
from genway.sandbox.output import OutputCallback, OutputSink

KillReason = Literal["timeout", "memory", "processes", "cancelled"]
_POLL_S = 0.1
_DRAIN_AFTER_EXIT_S = 5.0


@dataclass(frozen=True)
class CommandResult:
    """How a sandboxed command ended; `exit_code` is None when the sandbox killed it."""

    exit_code: int | None
    output: str
    truncated: bool
    timed_out: bool
    killed: str | None
    duration_s: float


async def run_sandboxed(
    command: str,
    *,
    workdir: Path,
    limits: SandboxLimits = SandboxLimits(),
    env: Mapping[str, str] | None = None,
    on_output: OutputCallback | None = None,
) -> CommandResult:
    """Run `command` with /bin/sh -c inside the sandbox, `workdir` its only writable path.

    Without `limits.network` (a per-project opt-in) the command has no network at all; with it,
    it shares the host's. Cancelling the caller kills the whole sandbox before CancelledError
    propagates. Raises SandboxUnavailable when bubblewrap or the pids cgroup is missing or
    unusable, ValueError for a workdir that is not a safe existing directory or a bad `env`.
    """
    reason = await asyncio.to_thread(sandbox_unavailable_reason)
    if reason is not None:
        raise SandboxUnavailable(reason)
    root = checked_workdir(workdir)
    child_env = sandbox_env(env)
    inner = bwrap_argv(resolve_bwrap(), command, root, limits)
    cgroup = PidsCgroup.create(pids_parent(), limits.max_processes)
    try:
        argv = launcher_argv(cgroup.procs_file, limits, inner)
        return await _run(argv, child_env, cgroup, limits, on_output)
    finally:
        await _to_the_end(cgroup.remove())


async def _run(
    argv: list[str],
    env: dict[str, str],
    cgroup: PidsCgroup,
    limits: SandboxLimits,
    on_output: OutputCallback | None,
) -> CommandResult:
    started = time.monotonic()
    process = await asyncio.create_subprocess_exec(
        *argv,
        stdin=asyncio.subprocess.DEVNULL,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
        env=env,
        start_new_session=True,
    )
    assert process.stdout is not None
    sink = OutputSink(limits.output_bytes, on_output)
    reader = asyncio.create_task(sink.drain(process.stdout))
    waiter = asyncio.create_task(process.wait())
    try:
        killed = await _watch(waiter, reader, cgroup, limits.timeout_s)
        if killed is not None:
            _kill(process, cgroup)
        await _finish(waiter, reader)
    except BaseException:
        _kill(process, cgroup)
        reader.cancel()
        await _to_the_end(asyncio.wait({waiter}, timeout=_DRAIN_AFTER_EXIT_S))
        raise
    return CommandResult(
        exit_code=None if killed is not None else _exit_code(process.returncode),
        output=sink.text,
        truncated=sink.truncated,
        timed_out=killed == "timeout",
        killed=killed,
        duration_s=time.monotonic() - started,
    )


async def _watch(
    waiter: asyncio.Task[int],
    reader: asyncio.Task[None],
    cgroup: PidsCgroup,
    timeout_s: float,
) -> KillReason | None:
    """Wait for the command to exit; the reason to kill it if it must not run on."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not waiter.done():
        if reader.done() and not reader.cancelled() and reader.exception() is not None:
            reader.result()
        if cgroup.limit_hit():
            return "processes"
        remaining = deadline - loop.time()
        if remaining <= 0:
            return "timeout"
        pending = {waiter} if reader.done() else {waiter, reader}
        await asyncio.wait(
            pending, timeout=min(_POLL_S, remaining), return_when=asyncio.FIRST_COMPLETED
        )
    return None


async def _finish(waiter: asyncio.Task[int], reader: asyncio.Task[None]) -> None:
    """Wait for the exit and the rest of the output; raises what `on_output` raised."""
    await waiter
    done, _ = await asyncio.wait({reader}, timeout=_DRAIN_AFTER_EXIT_S)
    if not done:
        reader.cancel()
        return
    reader.result()


async def _to_the_end(cleanup: Coroutine[Any, Any, Any]) -> None:
    """Run a (bounded) cleanup to its end even when the caller is cancelled meanwhile, again
    and again (a worker hard-stops a job that outlives its cancel grace by cancelling it on
    every tick): an interrupted cleanup would leave the command running. A cancellation that
    arrived is raised once the cleanup is done."""
    task = asyncio.ensure_future(cleanup)
    interrupted = False
    while not task.done():
        try:
            await asyncio.shield(task)
        except asyncio.CancelledError:
            if task.cancelled():
                raise
            interrupted = True
    task.result()
    if interrupted:
        raise asyncio.CancelledError


def _kill(process: asyncio.subprocess.Process, cgroup: PidsCgroup) -> None:
    if process.returncode is None:
        try:
            process.kill()
        except ProcessLookupError:
            pass
    cgroup.kill_members()


def _exit_code(returncode: int | None) -> int | None:
    """bwrap passes the command's status through; a signal becomes 128 + its number."""
    if returncode is None:
        return None
    return 128 - returncode if returncode < 0 else returncode

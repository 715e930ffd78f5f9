"""Whether sandboxed commands can run here; without a working sandbox nothing runs at all.

The probe really starts bubblewrap with the same mounts and namespaces as a command, so a
kernel without user or network namespaces, a seccomp profile that forbids mounts, or a missing
pids cgroup is found once, at the first call, instead of failing every command differently.
"""

from __future__ import annotations

import functools
import shutil
import subprocess
import tempfile
from pathlib import Path

from genway.sandbox.argv import bwrap_argv, sandbox_env
from genway.sandbox.cgroup import PidsCgroup, pids_parent
from genway.sandbox.errors import SandboxUnavailable
from genway.sandbox.limits import SandboxLimits

bwrap_path = "bwrap"
"""The bubblewrap binary: a name looked up on PATH, or an absolute path."""

_INSTALL = "install the Debian package bubblewrap (apt-get install bubblewrap)"
_PROBE_TIMEOUT_S = 20.0


def resolve_bwrap() -> str:
    """The absolute path of bwrap; raises SandboxUnavailable when it is not installed."""
    found = shutil.which(bwrap_path)
    if found is None:
        raise SandboxUnavailable(f"bubblewrap ({bwrap_path}) was not found on PATH; {_INSTALL}")
    return found


def sandbox_unavailable_reason() -> str | None:
    """None when sandboxed commands can run here, else why not and how to fix it (cached)."""
    try:
        return _probe(resolve_bwrap())
    except SandboxUnavailable as exc:
        return str(exc)


@functools.cache
def _probe(bwrap: str) -> str | None:
    try:
        PidsCgroup.create(pids_parent(), 8).path.rmdir()
    except SandboxUnavailable as exc:
        return str(exc)
    except OSError as exc:
        return f"cannot create a pids cgroup for sandboxed commands: {exc}"
    with tempfile.TemporaryDirectory(prefix="genway-sandbox-probe-") as workdir:
        argv = bwrap_argv(bwrap, "exit 0", Path(workdir).resolve(), SandboxLimits())
        try:
            done = subprocess.run(  # noqa: S603 - fixed argv, no shell on the host
                argv,
                env=sandbox_env(None),
                stdin=subprocess.DEVNULL,
                capture_output=True,
                timeout=_PROBE_TIMEOUT_S,
                check=False,
            )
        except (OSError, subprocess.TimeoutExpired) as exc:
            return f"bubblewrap at {bwrap} cannot be started: {exc}; {_INSTALL}"
    if done.returncode != 0:
        detail = done.stderr.decode(errors="replace").strip() or f"exit code {done.returncode}"
        return (
            f"bubblewrap at {bwrap} cannot create a sandbox here ({detail}); it needs mount, "
            f"PID and network namespaces (run as root or allow unprivileged user namespaces) "
            f"and {_INSTALL}"
        )
    return None

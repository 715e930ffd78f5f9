"""A pids cgroup per sandboxed command: the process limit that holds for root.

RLIMIT_NPROC is not enforced for root, and Genway runs as root in its container; it would also
count per uid across every sandbox at once. A pids cgroup caps the tasks of one command and
all its descendants, its `pids.events` says when the cap was hit, and its member list lets us
kill whatever is left. Both cgroup v1 (a `pids` hierarchy) and v2 (a `pids` controller enabled
for our own cgroup's children) work.
"""

from __future__ import annotations

import asyncio
import errno
import functools
import os
import signal
import uuid
from dataclasses import dataclass
from pathlib import Path

from genway.sandbox.errors import SandboxUnavailable

PARENT_NAME = "genway-sandbox"
_REMOVE_TIMEOUT_S = 5.0
_FIX = (
    "mount a writable cgroup v1 `pids` hierarchy or delegate a cgroup v2 subtree with the "
    "`pids` controller to Genway (docs/sandbox.md)"
)


@dataclass(frozen=True)
class _Mount:
    mountpoint: Path
    root: str
    v2: bool


def _pids_mount() -> _Mount | None:
    v2: _Mount | None = None
    for line in Path("/proc/self/mountinfo").read_text().splitlines():
        fields = line.split()
        tail = fields[fields.index("-") + 1 :]
        fstype, options = tail[0], tail[2].split(",")
        if fstype == "cgroup" and "pids" in options:
            return _Mount(Path(fields[4]), fields[3], v2=False)
        if fstype == "cgroup2" and v2 is None:
            v2 = _Mount(Path(fields[4]), fields[3], v2=True)
    return v2


def _own_cgroup(v2: bool) -> str:
    for line in Path("/proc/self/cgroup").read_text().splitlines():
        _, controllers, path = line.split(":", 2)
        if (v2 and controllers == "") or (not v2 and "pids" in controllers.split(",")):
            return path
    return "/"


@functools.cache
def pids_parent() -> Path:
    """The directory holding one cgroup per running command; created on first use.

    Raises SandboxUnavailable when no writable pids cgroup exists here.
    """
    mount = _pids_mount()
    if mount is None:
        raise SandboxUnavailable(f"no cgroup filesystem with the pids controller; {_FIX}")
    own = _own_cgroup(mount.v2)
    if own.startswith(mount.root):
        own = own[len(mount.root) :]
    base = mount.mountpoint / own.lstrip("/")
    if mount.v2 and "pids" not in _read(base / "cgroup.subtree_control").split():
        raise SandboxUnavailable(f"the pids controller is not enabled below {base}; {_FIX}")
    parent = base / PARENT_NAME
    try:
        parent.mkdir(exist_ok=True)
        if mount.v2:
            (parent / "cgroup.subtree_control").write_text("+pids")
    except OSError as exc:
        raise SandboxUnavailable(f"cannot create the cgroup {parent} ({exc}); {_FIX}") from exc
    return parent


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except OSError:
        return ""


@dataclass(frozen=True)
class PidsCgroup:
    """The cgroup of one command: created before it starts, removed after all of it is gone."""

    path: Path

    @classmethod
    def create(cls, parent: Path, max_pids: int) -> PidsCgroup:
        """Make a fresh cgroup capped at `max_pids` tasks."""
        path = parent / f"run-{uuid.uuid4().hex}"
        path.mkdir()
        try:
            (path / "pids.max").write_text(str(max_pids))
        except OSError:
            path.rmdir()
            raise
        return cls(path)

    @property
    def procs_file(self) -> Path:
        return self.path / "cgroup.procs"

    def limit_hit(self) -> bool:
        """True once a fork or clone in this cgroup failed because of `pids.max`."""
        for line in _read(self.path / "pids.events").splitlines():
            key, _, count = line.partition(" ")
            if key == "max":
                return int(count) > 0
        return False

    def kill_members(self) -> None:
        """SIGKILL every process still in the cgroup (stragglers after the PID namespace)."""
        for pid in _read(self.procs_file).split():
            try:
                os.kill(int(pid), signal.SIGKILL)
            except ProcessLookupError:
                pass

    async def remove(self) -> None:
        """Kill what is left and delete the cgroup; gives up quietly after a few seconds."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + _REMOVE_TIMEOUT_S
        while True:
            self.kill_members()
            try:
                self.path.rmdir()
                return
            except FileNotFoundError:
                return
            except OSError as exc:
                if exc.errno != errno.EBUSY or loop.time() > deadline:
                    return
            await asyncio.sleep(0.02)

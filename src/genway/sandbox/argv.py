"""The bubblewrap command line: which host paths a sandboxed command sees, and how.

The host root is never bound as a whole, so Genway's data directory, its secret key and the
rest of /root stay invisible. Only what a build or test run needs is mounted read-only: the
system directories, a handful of /etc files, the running Python's installation and the paths a
project adds. The worktree is the one read-write mount.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path

from genway.sandbox.limits import SandboxLimits

SYSTEM_DIRS = ("/usr", "/bin", "/sbin", "/lib", "/lib32", "/lib64", "/libx32")
ETC_ENTRIES = (
    "alternatives",
    "ssl",
    "ca-certificates",
    "passwd",
    "group",
    "nsswitch.conf",
    "hosts",
    "host.conf",
    "gai.conf",
    "resolv.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
)
HOSTNAME = "genway-sandbox"
SANDBOX_TMP = "/tmp"  # noqa: S108 - a private tmpfs inside the sandbox, not the host's /tmp
_NAMESPACES = ("--unshare-pid", "--unshare-ipc", "--unshare-uts", "--unshare-cgroup-try")
_HARDENING = ("--die-with-parent", "--new-session", "--cap-drop", "ALL")


def interpreter_dir() -> Path:
    """The running Python's installation, so `python3` works inside (a venv points into it)."""
    return Path(sys.base_prefix).resolve()


def system_sources() -> list[Path]:
    """Host system paths bound read-only; the worktree may not contain any of them."""
    paths = [Path(d) for d in SYSTEM_DIRS if os.path.lexists(d)]
    paths += [Path("/etc", name) for name in ETC_ENTRIES if os.path.exists(f"/etc/{name}")]
    return [*paths, interpreter_dir()]


def checked_workdir(workdir: Path) -> Path:
    """The worktree's real path; raises ValueError unless it is a directory that is safe to bind.

    Binding `/` or a parent of /usr, /etc, ... read-write would hand the host's system files to
    the command, so such a workdir is refused.
    """
    real = workdir.resolve()
    if not real.is_dir():
        raise ValueError(f"workdir {workdir} is not an existing directory")
    for source in system_sources():
        if source == real or real in source.parents:
            raise ValueError(f"workdir {real} contains the system path {source}")
    return real


def _readonly_args(limits: SandboxLimits) -> Iterator[str]:
    for name in SYSTEM_DIRS:
        if os.path.islink(name):
            yield from ("--symlink", os.readlink(name), name)
        elif os.path.isdir(name):
            yield from ("--ro-bind", name, name)
    for name in ETC_ENTRIES:
        if os.path.exists(f"/etc/{name}"):
            yield from ("--ro-bind", f"/etc/{name}", f"/etc/{name}")
    python = str(interpreter_dir())
    if not python.startswith("/usr/"):
        yield from ("--ro-bind", python, python)
    for path in limits.extra_ro_paths:
        if not os.path.isabs(path):
            raise ValueError(f"extra read-only path {path!r} is not absolute")
        yield from ("--ro-bind-try", path, path)


def bwrap_argv(bwrap: str, command: str, workdir: Path, limits: SandboxLimits) -> list[str]:
    """Everything after the launcher: bwrap, its mounts and namespaces, then `/bin/sh -c`.

    Order matters: the private /tmp comes before the worktree (which may live under the host's
    /tmp), and the sandbox root is made read-only last so writes outside the worktree and /tmp
    fail instead of landing in a throw-away tmpfs.
    """
    argv = [bwrap, *_readonly_args(limits)]
    argv += ["--proc", "/proc", "--dev", "/dev", "--tmpfs", SANDBOX_TMP]
    argv += ["--bind", str(workdir), str(workdir), "--chdir", str(workdir)]
    argv += ["--remount-ro", "/", *_NAMESPACES, "--hostname", HOSTNAME, *_HARDENING]
    if not limits.network:
        argv.append("--unshare-net")
    return [*argv, "--", "/bin/sh", "-c", command]


def launcher_argv(procs_file: Path, limits: SandboxLimits, inner: list[str]) -> list[str]:
    """A tiny /bin/sh that joins the command's cgroup and sets rlimits, then execs bwrap.

    Doing this in the child before exec with a shell, not Python's `preexec_fn`, keeps it safe
    in a server that has threads. The hard limits are set too, so the command cannot raise them.
    """
    script = (
        'echo $$ > "$1" || exit 125; '
        'ulimit -t "$2" && ulimit -v "$3" || exit 125; '
        'shift 3; exec "$@"'
    )
    memory_kib = max(1, limits.memory_bytes // 1024)
    args = [str(procs_file), str(max(1, limits.cpu_s)), str(memory_kib)]
    return ["/bin/sh", "-c", script, "genway-sandbox", *args, *inner]


def sandbox_env(extra: Mapping[str, str] | None) -> dict[str, str]:
    """The command's whole environment: a minimal PATH/HOME/LANG plus `extra`.

    The host environment is not inherited. Values go through the process environment rather
    than bwrap's `--setenv`, so project secrets never appear in a host command line.
    """
    path = f"{interpreter_dir()}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
    env = {"PATH": path, "HOME": SANDBOX_TMP, "LANG": "C.UTF-8", "TMPDIR": SANDBOX_TMP}
    for key, value in (extra or {}).items():
        if not key or "=" in key or "\0" in key or "\0" in value:
            raise ValueError(f"invalid environment variable name or value for {key!r}")
        env[key] = value
    return env

"""Private PostgreSQL and Redis servers for chaos tests: each on a free loopback port with its
files in a temporary directory, stopped and started again at will, and always stopped at the
end. Never the machine's shared servers, which other tests use.

PostgreSQL refuses to run as root: as root, `initdb` and `pg_ctl` run as the `postgres` user
(through `runuser`) on a directory that user owns. A machine without the binaries skips the
tests, except in CI (`CI` set), where that fails them.
"""

from __future__ import annotations

import contextlib
import os
import pwd
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from types import TracebackType

import pytest

from tests.conftest import IN_CI
from tests.jobs.processes import free_port

PG_BIN = Path(os.environ.get("GENWAY_TEST_PG_BIN", "/usr/lib/postgresql/15/bin"))
PG_USER = "postgres"
READY_TIMEOUT_S = 30.0


def require(what: str, missing: str | None) -> None:
    """Skip (fail in CI) when something the chaos tests need is missing."""
    if missing is None:
        return
    message = f"chaos tests need {what}: {missing}"
    if IN_CI:
        pytest.fail(message)
    pytest.skip(message)


def _missing_postgres() -> str | None:
    for tool in ("initdb", "pg_ctl"):
        if not (PG_BIN / tool).exists():
            return f"{PG_BIN / tool} not found (set GENWAY_TEST_PG_BIN)"
    if os.geteuid() == 0:
        if shutil.which("runuser") is None:
            return "runuser not found (PostgreSQL cannot run as root)"
        try:
            pwd.getpwnam(PG_USER)
        except KeyError:
            return f"no '{PG_USER}' OS user to run PostgreSQL as"
    return None


def _run(command: list[str], log: Path) -> None:
    with log.open("ab") as out:
        out.write(f"--- {' '.join(command)}\n".encode())
        out.flush()
        done = subprocess.run(
            command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=60
        )
    if done.returncode != 0:
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:])
        raise RuntimeError(f"{command[0]} failed ({done.returncode}):\n{tail}")


class PrivatePostgres:
    """`initdb` once, then `start()`, `stop(mode)` and `restart(mode)` on a fixed port."""

    def __init__(self) -> None:
        require("PostgreSQL's initdb and pg_ctl", _missing_postgres())
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="genway-chaos-pg-"))
        self.data = self.dir / "data"
        self.log = self.dir / "postgres.log"
        self._as_postgres = os.geteuid() == 0
        if self._as_postgres:
            entry = pwd.getpwnam(PG_USER)
            os.chown(self.dir, entry.pw_uid, entry.pw_gid)
        self.url = f"postgresql+asyncpg://postgres@127.0.0.1:{self.port}/postgres"
        self._initialized = False

    def _command(self, tool: str, *args: str) -> list[str]:
        command = [str(PG_BIN / tool), *args]
        return ["runuser", "-u", PG_USER, "--", *command] if self._as_postgres else command

    def _pg_ctl(self, *args: str) -> None:
        _run(self._command("pg_ctl", "-D", str(self.data), *args), self.dir / "pg_ctl.log")

    def start(self) -> None:
        if not self._initialized:
            initdb = self._command(
                "initdb", "-D", str(self.data), "-A", "trust", "-U", "postgres", "--no-sync"
            )
            _run(initdb, self.dir / "initdb.log")
            self._initialized = True
        # fsync off: the files only outlive a stop of the server here, never a crash of the
        # machine. Commits stay synchronous, so an acknowledged commit survives `immediate`.
        options = (
            f"-p {self.port} -k {self.dir} -c listen_addresses=127.0.0.1 -c fsync=off "
            "-c full_page_writes=off"
        )
        self._pg_ctl(
            "-o", options, "-l", str(self.log), "-w", "-t", str(int(READY_TIMEOUT_S)), "start"
        )

    def stop(self, mode: str = "fast") -> None:
        """`fast` ends the sessions and shuts down cleanly; `immediate` is a crash (the next
        start recovers from the WAL)."""
        self._pg_ctl("-m", mode, "-w", "-t", str(int(READY_TIMEOUT_S)), "stop")

    def restart(self, mode: str = "fast") -> None:
        self.stop(mode)
        self.start()

    @property
    def running(self) -> bool:
        return (self.data / "postmaster.pid").exists()

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def close(self) -> None:
        try:
            if self.running:
                self.stop("immediate")
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivatePostgres:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


class PrivateRedis:
    """`redis-server` without persistence as a subprocess: `start()`, `stop()` (SIGKILL, so the
    data is gone, as after a crash) and `restart()` on the same port."""

    def __init__(self) -> None:
        binary = shutil.which("redis-server")
        require("redis-server", None if binary else "redis-server not found on PATH")
        assert binary is not None
        self.binary = binary
        self.port = free_port()
        self.dir = Path(tempfile.mkdtemp(prefix="genway-chaos-redis-"))
        self.log = self.dir / "redis.log"
        self.url = f"redis://127.0.0.1:{self.port}/0"
        self.popen: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        if self.running:
            raise RuntimeError(f"redis-server is already running on port {self.port}")
        command = [
            self.binary,
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--save",
            "",
            "--appendonly",
            "no",
            "--daemonize",
            "no",
            "--dir",
            str(self.dir),
        ]
        with self.log.open("ab") as out:
            self.popen = subprocess.Popen(
                command, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL
            )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not self._answers_ping():
            if self.popen.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"redis-server did not start:\n{self.log_tail()}")
            time.sleep(0.05)

    def _answers_ping(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1) as probe:
                probe.sendall(b"PING\r\n")
                return probe.recv(16).startswith(b"+PONG")
        except OSError:
            return False

    def stop(self) -> None:
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGKILL)
        self.popen.wait(timeout=10)

    def restart(self) -> None:
        self.stop()
        self.start()

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def log_tail(self, lines: int = 30) -> str:
        with contextlib.suppress(FileNotFoundError):
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        return "(no log)"

    def close(self) -> None:
        try:
            self.stop()
        finally:
            shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> PrivateRedis:
        try:
            self.start()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

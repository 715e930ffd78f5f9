"""Multi-process job tests: `genway serve` and `genway worker` as real subprocesses on free
loopback ports, each logging to its own file, every one of them killed when the test ends; plus
polling, job and event helpers shared by those tests.

The subprocesses load the `test.count` executor (`tests.fakes.counting_executor`), which records
every execution in a count file, so a test can tell how often each job really ran.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any, TypeVar

import httpx
from sqlalchemy import func, select

from genway.db import Database
from genway.jobs.events import read_events
from genway.jobs.models import Job, JobEvent
from genway.jobs.states import TERMINAL
from tests.fakes import counting_executor
from tests.support import Tenant, make_tenant

REPO_ROOT = Path(__file__).resolve().parents[2]
SECRET_KEY = "test-secret-key-0123456789abcdef0123456789"
COUNT_KIND = counting_executor.KIND
TERMINAL_STATUSES = frozenset(str(status) for status in TERMINAL)
# A generous bound for a process to start: importing Genway takes seconds on a busy machine.
STARTUP_TIMEOUT_S = 90.0

T = TypeVar("T")


def genway_command() -> str:
    """The `genway` console script of this virtualenv."""
    for candidate in (
        REPO_ROOT / ".venv" / "bin" / "genway",
        Path(sys.executable).with_name("genway"),
    ):
        if candidate.exists():
            return str(candidate)
    found = shutil.which("genway")
    if found is None:
        raise RuntimeError("the `genway` command is not installed (run `make install`)")
    return found


def free_port() -> int:
    """A currently free TCP port on 127.0.0.1."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


class GenwayProcess:
    """One `genway ...` subprocess; stdout and stderr go to `log_path`."""

    def __init__(self, name: str, args: list[str], env: Mapping[str, str], log_path: Path) -> None:
        self.name = name
        self.args = args
        self.env = dict(env)
        self.log_path = log_path
        self.popen: subprocess.Popen[bytes] | None = None
        self.pids: list[int] = []  # every pid this process had (it may be restarted)

    def start(self) -> GenwayProcess:
        if self.running:
            raise RuntimeError(f"{self.name} is already running (pid {self.pid})")
        with self.log_path.open("ab") as log:
            log.write(f"--- starting {self.name}: genway {' '.join(self.args)}\n".encode())
            log.flush()
            self.popen = subprocess.Popen(
                [genway_command(), *self.args],
                cwd=REPO_ROOT,
                env=self.env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self.pids.append(self.popen.pid)
        return self

    @property
    def pid(self) -> int:
        assert self.popen is not None, f"{self.name} was never started"
        return self.popen.pid

    @property
    def running(self) -> bool:
        return self.popen is not None and self.popen.poll() is None

    def kill(self) -> None:
        """SIGKILL: the process gets no chance to clean up. Then reap it."""
        if self.popen is None:
            return
        if self.popen.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                self.popen.send_signal(signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.popen.wait(timeout=10)

    def log_tail(self, lines: int = 40) -> str:
        try:
            text = self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return "(no log)"
        return "\n".join(text.splitlines()[-lines:])

    def ensure_running(self) -> None:
        if not self.running:
            code = self.popen.returncode if self.popen is not None else None
            raise AssertionError(f"{self.name} exited (status {code}); log:\n{self.log_tail()}")

    async def wait_for_log(self, needle: str, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until the process logs a line containing `needle` (since its latest start)."""

        async def probe() -> bool | None:
            self.ensure_running()
            text = self.log_path.read_text(errors="replace")
            return True if needle in text.rpartition("--- starting")[2] else None

        await wait_until(probe, timeout=timeout, what=f"{self.name} to log {needle!r}")


class WorkerProcess(GenwayProcess):
    async def wait_started(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        await self.wait_for_log('"worker_started"', timeout)


class ApiProcess(GenwayProcess):
    def __init__(
        self, name: str, port: int, args: list[str], env: Mapping[str, str], log_path: Path
    ):
        super().__init__(name, args, env, log_path)
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.ws_url = f"ws://127.0.0.1:{port}"

    async def wait_ready(self, timeout: float = STARTUP_TIMEOUT_S) -> None:
        """Wait until `GET /health` answers 200 (the API and its database are up)."""
        async with httpx.AsyncClient(base_url=self.url, timeout=2, trust_env=False) as http:

            async def probe() -> bool | None:
                self.ensure_running()
                with contextlib.suppress(httpx.TransportError):
                    if (await http.get("/health")).status_code == 200:
                        return True
                return None

            await wait_until(probe, timeout=timeout, what=f"{self.name} to answer /health")

    def client(self, timeout: float = 30.0, **kwargs: Any) -> httpx.AsyncClient:
        return httpx.AsyncClient(base_url=self.url, timeout=timeout, trust_env=False, **kwargs)


@dataclass(frozen=True)
class Execution:
    """One line of the count file: one execution of a `test.count` job."""

    job_id: int
    attempt: int
    pid: int


def read_executions(path: Path) -> list[Execution]:
    if not path.exists():
        return []
    executions = []
    for line in path.read_text().splitlines():
        job_id, attempt, pid = line.split()  # a malformed (interleaved) line fails here
        executions.append(Execution(int(job_id), int(attempt), int(pid)))
    return executions


class Processes:
    """Starts Genway subprocesses sharing one database (and Redis, if given) and kills every one
    of them on exit, whatever happened."""

    def __init__(
        self,
        workdir: Path,
        database_url: str,
        *,
        redis_url: str | None = None,
        lease_s: float | None = None,
        reaper_interval_s: float | None = None,
        extra_env: Mapping[str, str] | None = None,
    ) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.count_file = workdir / "executions.txt"
        self.started: list[GenwayProcess] = []
        env = {k: v for k, v in os.environ.items() if not k.startswith("GENWAY_")}
        pythonpath = [str(REPO_ROOT), *filter(None, env.get("PYTHONPATH", "").split(os.pathsep))]
        env.update(
            PYTHONPATH=os.pathsep.join(pythonpath),
            PYTHONUNBUFFERED="1",
            GENWAY_DATABASE_URL=database_url,
            GENWAY_DATA_DIR=str(workdir / "data"),
            GENWAY_SECRET_KEY=SECRET_KEY,
            GENWAY_LOG_JSON="true",
            GENWAY_EMBEDDED_WORKER="false",
            GENWAY_EXECUTOR_MODULES=counting_executor.__name__,
            GENWAY_TEST_COUNT_FILE=str(self.count_file),
        )
        if redis_url:
            env["GENWAY_REDIS_URL"] = redis_url
        if lease_s is not None:
            env["GENWAY_LEASE_S"] = str(lease_s)
        if reaper_interval_s is not None:
            env["GENWAY_REAPER_INTERVAL_S"] = str(reaper_interval_s)
        env.update(extra_env or {})
        self.env = env

    def _log(self, name: str) -> Path:
        return self.workdir / f"{name}.log"

    def api(self, name: str, *, port: int | None = None, log_level: str = "WARNING") -> ApiProcess:
        """`genway serve --no-migrate` on a free port (the test database is already migrated)."""
        port = port or free_port()
        args = ["serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"]
        env = {**self.env, "GENWAY_LOG_LEVEL": log_level}
        process = ApiProcess(name, port, args, env, self._log(name))
        self.started.append(process)
        process.start()
        return process

    def worker(
        self, name: str, *, concurrency: int | None = None, log_level: str = "INFO"
    ) -> WorkerProcess:
        args = ["worker"] + (["--concurrency", str(concurrency)] if concurrency else [])
        env = {**self.env, "GENWAY_LOG_LEVEL": log_level}
        process = WorkerProcess(name, args, env, self._log(name))
        self.started.append(process)
        process.start()
        return process

    def executions(self) -> list[Execution]:
        return read_executions(self.count_file)

    def logs(self) -> str:
        return "\n".join(f"== {p.name} ==\n{p.log_tail()}" for p in self.started)

    def kill_all(self) -> None:
        for process in self.started:
            process.kill()

    def __enter__(self) -> Processes:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.kill_all()


async def wait_until(
    probe: Callable[[], Awaitable[T | None]],
    *,
    timeout: float,
    what: str,
    interval: float = 0.1,
) -> T:
    """Poll `probe` until it returns something other than None; fail after `timeout` seconds
    (a generous bound, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while True:
        value = await probe()
        if value is not None:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up after {timeout:g} s waiting for {what}")
        await asyncio.sleep(interval)


def count_job(seconds: float = 0.0, steps: int = 1, **fields: Any) -> dict[str, Any]:
    """A `test.count` job request."""
    return {"kind": COUNT_KIND, "input": {"seconds": seconds, "steps": steps}, **fields}


def jobs_path(org_id: int, job_id: int | None = None) -> str:
    path = f"/v1/organizations/{org_id}/jobs"
    return path if job_id is None else f"{path}/{job_id}"


async def submit(
    http: httpx.AsyncClient, tenant: Tenant, spec: Mapping[str, Any]
) -> dict[str, Any]:
    response = await http.post(jobs_path(tenant.org_id), json=dict(spec), headers=tenant.headers)
    assert response.status_code == 201, response.text
    job: dict[str, Any] = response.json()
    return job


async def get_job(http: httpx.AsyncClient, tenant: Tenant, job_id: int) -> dict[str, Any]:
    response = await http.get(jobs_path(tenant.org_id, job_id), headers=tenant.headers)
    assert response.status_code == 200, response.text
    job: dict[str, Any] = response.json()
    return job


async def wait_job(
    http: httpx.AsyncClient,
    tenant: Tenant,
    job_id: int,
    statuses: Iterable[str] = TERMINAL_STATUSES,
    *,
    timeout: float = 60.0,
) -> dict[str, Any]:
    """Poll the job through the API until its status is one of `statuses`."""
    wanted = set(statuses)

    async def probe() -> dict[str, Any] | None:
        job = await get_job(http, tenant, job_id)
        return job if job["status"] in wanted else None

    return await wait_until(probe, timeout=timeout, what=f"job {job_id} to be {sorted(wanted)}")


async def list_all_jobs(http: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    """Every job of the tenant through the API, following the cursor."""
    jobs: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        params: dict[str, Any] = {"limit": 100}
        if cursor is not None:
            params["cursor"] = cursor
        response = await http.get(jobs_path(tenant.org_id), params=params, headers=tenant.headers)
        assert response.status_code == 200, response.text
        page = response.json()
        jobs.extend(page["items"])
        cursor = page["next_cursor"]
        if cursor is None:
            return jobs


async def read_sse(
    http: httpx.AsyncClient, tenant: Tenant, job_id: int, *, timeout: float = 30.0
) -> list[dict[str, Any]]:
    """The job's events through SSE (the stream ends after the final status)."""
    events: list[dict[str, Any]] = []
    async with asyncio.timeout(timeout):
        async with http.stream(
            "GET", f"{jobs_path(tenant.org_id, job_id)}/events", headers=tenant.headers
        ) as response:
            assert response.status_code == 200
            async for line in response.aiter_lines():
                if line.startswith("data: "):
                    events.append(json.loads(line.removeprefix("data: ")))
    return events


@contextlib.asynccontextmanager
async def open_database(url: str) -> AsyncIterator[Database]:
    database = Database(url)
    try:
        yield database
    finally:
        await database.dispose()


async def new_tenant(database_url: str) -> Tenant:
    """An organization with an owner key, made directly in the database."""
    async with open_database(database_url) as database:
        return await make_tenant(database)


async def db_events(database: Database, tenant: Tenant, job_id: int) -> list[dict[str, Any]]:
    async with database.sessions() as session:
        return list(await read_events(session, job_id, tenant.org_id, 0, limit=100_000))


async def status_counts(database: Database, job_ids: Iterable[int]) -> dict[str, int]:
    ids = list(job_ids)
    async with database.sessions() as session:
        rows = await session.execute(
            select(Job.status, func.count()).where(Job.id.in_(ids)).group_by(Job.status)
        )
        return {status: count for status, count in rows.tuples()}


async def event_counts(database: Database, job_ids: Iterable[int]) -> dict[int, int]:
    ids = list(job_ids)
    async with database.sessions() as session:
        rows = await session.execute(
            select(JobEvent.job_id, func.count())
            .where(JobEvent.job_id.in_(ids))
            .group_by(JobEvent.job_id)
        )
        return {job_id: count for job_id, count in rows.tuples()}

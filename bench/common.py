"""Shared benchmark plumbing: a real `genway serve` subprocess and a bounded HTTP load loop."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
GENWAY = str(Path(sys.executable).with_name("genway"))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Service:
    url: str
    env: dict[str, str]
    pid: int | None = None

    def cli(self, *args: str) -> dict[str, object]:
        out = subprocess.run(
            [GENWAY, *args, "--json"], env=self.env, check=True, capture_output=True, text=True
        )
        return dict(json.loads(out.stdout))


@contextmanager
def genway_service(extra_env: dict[str, str] | None = None) -> Iterator[Service]:
    """`genway serve` in a subprocess on a free loopback port, with its own data directory."""
    with tempfile.TemporaryDirectory() as data_dir:
        port = free_port()
        env = {
            **os.environ,
            "GENWAY_DATA_DIR": data_dir,
            "GENWAY_LOG_LEVEL": "ERROR",
            "GENWAY_EMBEDDED_WORKER": "false",
            **(extra_env or {}),
        }
        subprocess.run([GENWAY, "migrate"], env=env, check=True, capture_output=True)
        process = subprocess.Popen(
            [GENWAY, "serve", "--port", str(port), "--no-migrate"],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        url = f"http://127.0.0.1:{port}"
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline:
                try:
                    if httpx.get(f"{url}/health/live", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            else:
                raise RuntimeError("genway serve did not start")
            yield Service(url, env, process.pid)
        finally:
            process.terminate()
            process.wait(timeout=15)


@dataclass
class LoadResult:
    requests: int
    seconds: float
    latencies_ms: list[float]
    errors: int

    @property
    def rps(self) -> float:
        return self.requests / self.seconds

    def percentile(self, q: float) -> float:
        ordered = sorted(self.latencies_ms)
        return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")

    @property
    def p50(self) -> float:
        return statistics.median(self.latencies_ms) if self.latencies_ms else float("nan")


async def _raw_get(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> int:
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    await reader.readexactly(length)
    return int(status_line.split()[1])


async def load(
    url: str, headers: dict[str, str], *, concurrency: int = 32, seconds: float = 4.0
) -> LoadResult:
    """GET `url` over `concurrency` keep-alive connections for `seconds` (bounded in time).

    A minimal HTTP/1.1 client on raw sockets: httpx's pool costs more CPU than the server
    under test, and on 2 cores the client would otherwise be what gets measured.
    """
    parsed = httpx.URL(url)
    head = f"GET {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (head + "\r\n").encode()
    latencies: list[float] = []
    errors = 0
    stop_at = time.perf_counter() + seconds

    async def worker() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            while time.perf_counter() < stop_at:
                started = time.perf_counter()
                if await _raw_get(reader, writer, request) != 200:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return LoadResult(len(latencies), elapsed, latencies, errors)


async def _raw_exchange(
    reader: asyncio.StreamReader, writer: asyncio.StreamWriter, request: bytes
) -> tuple[int, bytes]:
    """Send one HTTP/1.1 request on a keep-alive connection; the status and the body."""
    writer.write(request)
    await writer.drain()
    status_line = await reader.readline()
    length = 0
    while True:
        line = await reader.readline()
        if line in (b"\r\n", b""):
            break
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value.strip())
    body = await reader.readexactly(length)
    return int(status_line.split()[1]), body


async def post_load(
    url: str,
    headers: dict[str, str],
    body: bytes,
    *,
    total: int,
    concurrency: int = 32,
    max_seconds: float = 60.0,
    expect: int = 201,
) -> LoadResult:
    """POST `body` to `url` over `concurrency` keep-alive connections until `total` requests
    are answered (bounded in count, and in time by `max_seconds`). Same raw client as `load`."""
    parsed = httpx.URL(url)
    head = f"POST {parsed.raw_path.decode()} HTTP/1.1\r\nHost: {parsed.host}\r\n"
    head += "Content-Type: application/json\r\n"
    head += f"Content-Length: {len(body)}\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    request = (head + "\r\n").encode() + body
    latencies: list[float] = []
    errors = 0
    remaining = total
    stop_at = time.perf_counter() + max_seconds

    async def worker() -> None:
        nonlocal errors, remaining
        reader, writer = await asyncio.open_connection(parsed.host, parsed.port)
        try:
            while remaining > 0 and time.perf_counter() < stop_at:
                remaining -= 1
                started = time.perf_counter()
                status, _body = await _raw_exchange(reader, writer, request)
                if status != expect:
                    errors += 1
                latencies.append((time.perf_counter() - started) * 1000)
        finally:
            writer.close()

    began = time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    elapsed = time.perf_counter() - began
    return LoadResult(len(latencies), elapsed, latencies, errors)


async def reset_postgres(url: str) -> None:
    """Create the database named in `url` if missing and give it an empty `public` schema
    (for benchmarks on a PostgreSQL database of their own, such as `genway_bench`)."""
    import asyncpg
    from sqlalchemy.engine import make_url

    target = make_url(url).set(drivername="postgresql")
    admin_url = target.set(database="postgres").render_as_string(hide_password=False)
    admin = await asyncpg.connect(admin_url)
    try:
        query = "SELECT 1 FROM pg_database WHERE datname = $1"
        if not await admin.fetchval(query, target.database):
            await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(target.render_as_string(hide_password=False))
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


@contextmanager
def worker_process(args: list[str], env: dict[str, str], log_path: Path) -> Iterator[None]:
    """A worker subprocess (started in ROOT), stopped with SIGTERM, then killed, on exit; its
    stderr goes to `log_path`, whose end is printed if the block fails."""
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            args, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, start_new_session=True
        )
        try:
            yield
        except BaseException:
            print(f"--- {' '.join(args[:3])} log:", file=sys.stderr)
            print(log_path.read_text(errors="replace")[-3000:], file=sys.stderr)
            raise
        finally:
            process.terminate()
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()

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
            yield Service(url, env)
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

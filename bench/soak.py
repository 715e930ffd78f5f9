"""Soak: mixed load at a fixed rate below capacity for `--minutes`, then: errors, latency per
route, and whether anything grows.

A real `genway serve` (SQLite, embedded worker of 4 slots), one enterprise organization. At
fixed rates (open loop: a slow answer does not slow the schedule): job submissions
(`diagnostic.sleep` of 50 ms), job reads, job lists, image uploads (a fresh 64 by 64 PNG each);
and for the whole run `--sse` organization event streams (SSE) and `--ws` organization
WebSockets, each reading every event. The API process's resident memory is read every 10 s.

Figures, against baselines from the same run: memory at the end over memory after the first
minute (goal ≤ 1.10); p99 per route in the last minute over the first (drift; goal ≈ 1).

Run: .venv/bin/python bench/soak.py [--minutes 10] [--rate 40] [--sse 20] [--ws 20]
"""

from __future__ import annotations

import argparse
import asyncio
import io
import json
import random
import statistics
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402
import websockets  # noqa: E402
from common import Service, genway_service  # noqa: E402
from PIL import Image  # noqa: E402

# Share of the request rate per route (submissions, reads, lists, uploads).
MIX = {"submit": 0.25, "read": 0.5, "list": 0.15, "upload": 0.10}


@dataclass
class Stats:
    started: float = field(default_factory=time.monotonic)
    latencies: dict[str, list[tuple[float, float]]] = field(
        default_factory=lambda: defaultdict(list)
    )
    errors: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    events: int = 0
    memory: list[tuple[float, int]] = field(default_factory=list)

    def record(self, route: str, seconds: float, ok: bool) -> None:
        self.latencies[route].append((time.monotonic() - self.started, seconds * 1000))
        if not ok:
            self.errors[route] += 1


def p99(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(0.99 * len(ordered)))] if ordered else float("nan")


def png() -> bytes:
    image = Image.new("RGB", (64, 64), tuple(random.randrange(256) for _ in range(3)))
    out = io.BytesIO()
    image.save(out, "PNG")
    return out.getvalue()


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Load:
    def __init__(self, service: Service, org_id: int, key: str, stats: Stats) -> None:
        self.base = f"{service.url}/v1/organizations/{org_id}"
        self.ws_base = self.base.replace("http://", "ws://")
        self.headers = {"Authorization": f"Bearer {key}"}
        self.stats = stats
        self.job_ids: list[int] = []
        self.client = httpx.AsyncClient(
            timeout=30, limits=httpx.Limits(max_connections=200, max_keepalive_connections=100)
        )

    async def one(self, route: str) -> None:
        started = time.perf_counter()
        ok = False
        try:
            if route == "submit":
                body = {"kind": "diagnostic.sleep", "input": {"seconds": 0.05}}
                response = await self.client.post(
                    f"{self.base}/jobs", json=body, headers=self.headers
                )
                ok = response.status_code == 201
                if ok:
                    self.job_ids.append(response.json()["id"])
            elif route == "read" and self.job_ids:
                job_id = random.choice(self.job_ids[-200:])
                response = await self.client.get(f"{self.base}/jobs/{job_id}", headers=self.headers)
                ok = response.status_code == 200
            elif route == "list":
                response = await self.client.get(
                    f"{self.base}/jobs", params={"limit": 20}, headers=self.headers
                )
                ok = response.status_code == 200
            elif route == "upload":
                files = {"file": (f"soak-{random.randrange(10**9)}.png", png(), "image/png")}
                response = await self.client.post(
                    f"{self.base}/uploads", files=files, headers=self.headers
                )
                ok = response.status_code == 201
            else:
                return
        except httpx.HTTPError:
            ok = False
        self.stats.record(route, time.perf_counter() - started, ok)

    async def requests(self, rate: float, until: float) -> None:
        """Open loop: a request every 1/rate s, whatever the answers take."""
        routes, weights = zip(*MIX.items(), strict=True)
        pending: set[asyncio.Task[None]] = set()
        next_at = time.monotonic()
        while next_at < until:
            route = random.choices(routes, weights)[0]
            task = asyncio.create_task(self.one(route))
            pending.add(task)
            task.add_done_callback(pending.discard)
            next_at += 1 / rate
            await asyncio.sleep(max(0.0, next_at - time.monotonic()))
        await asyncio.gather(*pending)

    async def sse(self, until: float) -> None:
        try:
            async with self.client.stream(
                "GET", f"{self.base}/events/stream", headers=self.headers, timeout=None
            ) as response:
                async for line in response.aiter_lines():
                    if line.startswith("data:"):
                        self.stats.events += 1
                    if time.monotonic() > until:
                        return
        except httpx.HTTPError:
            self.stats.errors["sse"] += 1

    async def ws(self, until: float) -> None:
        try:
            async with websockets.connect(
                f"{self.ws_base}/events", additional_headers=self.headers
            ) as socket:
                while time.monotonic() < until:
                    try:
                        await asyncio.wait_for(socket.recv(), timeout=1)
                        self.stats.events += 1
                    except TimeoutError:
                        continue
        except websockets.WebSocketException:
            self.stats.errors["ws"] += 1


async def sample_memory(pid: int, stats: Stats, until: float) -> None:
    while time.monotonic() < until:
        stats.memory.append((time.monotonic() - stats.started, rss_kib(pid)))
        await asyncio.sleep(10)


async def run(args: argparse.Namespace) -> None:
    env = {"GENWAY_EMBEDDED_WORKER": "true", "GENWAY_WORKER_CONCURRENCY": "4"}
    with genway_service(env) as service:
        created = service.cli(
            "orgs",
            "create",
            "--name",
            "soak",
            "--owner-email",
            "s@example.com",
            "--tier",
            "enterprise",
        )
        stats = Stats()
        load = Load(service, int(created["organization_id"]), str(created["api_key"]), stats)
        until = time.monotonic() + args.minutes * 60
        assert service.pid is not None
        tasks = [
            load.requests(args.rate, until),
            sample_memory(service.pid, stats, until),
            *(load.sse(until) for _ in range(args.sse)),
            *(load.ws(until) for _ in range(args.ws)),
        ]
        await asyncio.gather(*tasks)
        stats.memory.append((time.monotonic() - stats.started, rss_kib(service.pid)))
        await load.client.aclose()
        report(args, stats)


def report(args: argparse.Namespace, stats: Stats) -> None:
    total = sum(len(v) for v in stats.latencies.values())
    errors = sum(stats.errors.values())
    print(
        f"{args.minutes} min at {args.rate} requests/s with {args.sse} SSE and {args.ws} "
        f"WebSocket subscribers: {total} requests, {errors} errors {dict(stats.errors)}, "
        f"{stats.events} events received"
    )
    end = args.minutes * 60
    print("| route | requests | p50 ms | p99 ms | p99 first minute | p99 last minute | drift |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    for route, samples in sorted(stats.latencies.items()):
        all_ms = [ms for _, ms in samples]
        first = [ms for at, ms in samples if at < 60]
        last = [ms for at, ms in samples if at >= end - 60]
        drift = p99(last) / p99(first) if first and last else float("nan")
        print(
            f"| {route} | {len(samples)} | {statistics.median(all_ms):.1f} | {p99(all_ms):.1f} "
            f"| {p99(first):.1f} | {p99(last):.1f} | {drift:.2f} |"
        )
    after_first = next((kib for at, kib in stats.memory if at >= 60), stats.memory[0][1])
    final = stats.memory[-1][1]
    print(
        f"API process memory: {after_first / 1024:.1f} MiB after 1 min, {final / 1024:.1f} MiB "
        f"at the end: ratio {final / after_first:.3f} (goal ≤ 1.10)"
    )
    print(json.dumps({"memory_kib": stats.memory}))


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=10)
    parser.add_argument("--rate", type=float, default=40, help="requests per second")
    parser.add_argument("--sse", type=int, default=20)
    parser.add_argument("--ws", type=int, default=20)
    asyncio.run(run(parser.parse_args()))

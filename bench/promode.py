"""Pro Mode sessions against a fake OpenAI-compatible provider answering in a fixed time.

The fake (`tests/fakes/openai_server.py`, real wire protocol, streamed answers of a few tokens)
waits `--latency-ms` (100) before every answer; every route points at it.

  critical path: one session of 8 candidates and 2 iterations. Per iteration its call graph
      has the candidates (in parallel), ceil(log2 8) = 3 bracket rounds (a round's matches in
      parallel) and the synthesis: 10 calls one after another, 1.0 s at 100 ms. The figure is
      the session's wall time (job created -> finished) over that critical path (goal <= 1.2),
      and over the same call graph made directly through the same SDK from a process of its own
      (what this machine costs before Genway does anything). Embedded (`genway serve`, SQLite)
      and distributed (PostgreSQL + Redis, 2 `genway worker`s); median of `--repeats` sessions
      after a warm-up session.
  concurrency: `--sessions` (20) such sessions submitted at once to 2 workers of
      `--concurrency` (4) slots. Instances run inside their session's slot, so no session waits
      for a slot its own children hold. The figure is the makespan (first created -> last
      finished) over ceil(sessions / slots) x critical path, and over the same call graphs made
      directly through the SDK from two processes with the same concurrency.

Run: .venv/bin/python bench/promode.py [--latency-ms 100] [--sessions 20] [--repeats 3]
Needs PostgreSQL (--pg-url; the database is created if missing and its schema replaced) and
Redis (--redis-url).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.append(str(BENCH.parent))  # for tests.fakes

import httpx  # noqa: E402
from common import GENWAY, ROOT, Service, genway_service  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer, Reply, text_of  # noqa: E402

from genway.promode.tournament import critical_path_calls  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/genway_bench_promode"
DEFAULT_REDIS = "redis://127.0.0.1:6379/6"
MODEL = "openai:gpt-4o-mini"
TASKS = ("research", "wireframe", "code", "qa", "pedagogy", "judge", "synthesis")
CANDIDATES, ITERATIONS = 8, 2
TERMINAL = {"succeeded", "failed", "cancelled"}
# A text task: this benchmark measures the tournament's orchestration (code sessions run tool
# loops on checkouts; bench/agent_loop.py measures those).
RESEARCH = {"task": "research"}


def scripted_reply(body: dict[str, Any]) -> str:
    """Each step's answer in its format (the judge's JSON), kept to a few tokens: every token
    is a streamed chunk the SDK parses, and this benchmark measures orchestration, not that."""
    messages = body.get("messages", [])
    system = text_of(messages[0].get("content")) if messages else ""
    if "judge of a tournament" in system:
        return json.dumps({"winner": "A", "reason": "complete"}, separators=(",", ":"))
    if "combine the best answers" in system:
        return "merged"
    if "You improve an existing answer" in system:
        return "CRITIQUE:\nterse\n\nIMPROVED ANSWER:\nbetter"
    return "candidate"


def call_graph(candidates: int, iterations: int) -> list[tuple[str, int]]:
    """The session's stages as (step, parallel calls), in order."""
    stages: list[tuple[str, int]] = []
    for iteration in range(iterations):
        entrants = candidates
        stages.append(("generate" if iteration == 0 else "improve", candidates - min(iteration, 1)))
        while entrants > 1:
            stages.append(("judge", entrants // 2))
            entrants = entrants // 2 + entrants % 2
        stages.append(("synthesis", 1))
    return stages


async def replay_call_graph(base_url: str, repeats: int, graphs: int = 1, width: int = 1) -> float:
    """The session's call graph made directly through the same SDK and fake, without Genway:
    the floor this machine puts under a session. With `graphs` > 1, that many graphs, at most
    `width` at a time, and the seconds for all of them (else the median of `repeats`)."""
    from genway.agents.system_prompts import IMPROVE, JUDGE, SYNTHESIS, system_prompt
    from genway.engines.llm.router import ModelRouter, build_providers

    systems = {
        "generate": system_prompt("code") + "\nYou are the 'backend' agent",
        "improve": system_prompt(IMPROVE) + "\nYou are the 'backend' agent",
        "judge": system_prompt(JUDGE),
        "synthesis": system_prompt(SYNTHESIS),
    }
    router = ModelRouter({"any": [MODEL]}, build_providers(base_url, None, None, None))
    slots = asyncio.Semaphore(width)

    async def call(step: str) -> None:
        await router.complete(
            "any",
            [{"role": "user", "content": "Build a URL shortener"}],
            system=systems[step],
            on_delta=lambda _text: None,
        )

    async def graph() -> None:
        async with slots:
            for step, parallel in call_graph(CANDIDATES, ITERATIONS):
                await asyncio.gather(*(call(step) for _ in range(parallel)))

    await call("generate")
    timings = []
    for _ in range(1 if graphs > 1 else repeats):
        began = time.perf_counter()
        await asyncio.gather(*(graph() for _ in range(graphs)))
        timings.append(time.perf_counter() - began)
    await router.aclose()
    return statistics.median(timings)


async def measure_floor(base_url: str, repeats: int, graphs: int = 1, width: int = 1) -> float:
    """`replay_call_graph` in a process of its own, as a Genway worker is."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--replay",
        base_url,
        "--repeats",
        str(repeats),
        "--graphs",
        str(graphs),
        "--concurrency",
        str(width),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError("the call-graph replay failed")
    return float(out.decode().strip())


async def crowd_floor(base_url: str, sessions: int, concurrency: int) -> float:
    """The concurrency case without Genway: two processes (the two workers), each making half
    the sessions' call graphs with `concurrency` at a time."""
    halves = (sessions - sessions // 2, sessions // 2)
    timings = await asyncio.gather(
        *(measure_floor(base_url, 1, half, concurrency) for half in halves if half)
    )
    return max(timings)


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


@dataclass
class Sample:
    job: dict[str, Any]
    client_s: float

    @property
    def server_s(self) -> float:
        return (
            parse_time(self.job["finished_at"]) - parse_time(self.job["created_at"])
        ).total_seconds()


class Tenant:
    def __init__(self, service: Service) -> None:
        created = service.cli(
            "orgs",
            "create",
            "--name",
            "bench",
            "--owner-email",
            "bench@example.com",
            "--tier",
            "enterprise",
        )
        self.org_id = int(str(created["organization_id"]))
        self.headers = {"Authorization": f"Bearer {created['api_key']}"}
        self.url = service.url

    def org(self, path: str) -> str:
        return f"{self.url}/v1/organizations/{self.org_id}{path}"


async def run_session(
    client: httpx.AsyncClient, tenant: Tenant, project_id: int, poll_s: float, **shape: Any
) -> Sample:
    body = {
        "prompt": "Build a URL shortener",
        "agents": ["backend", "frontend"],
        **RESEARCH,
        **shape,
    }
    began = time.perf_counter()
    response = await client.post(
        tenant.org(f"/projects/{project_id}/pro-mode"), json=body, headers=tenant.headers
    )
    response.raise_for_status()
    job_id = response.json()["id"]
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        job = (await client.get(tenant.org(f"/jobs/{job_id}"), headers=tenant.headers)).json()
        if job["status"] in TERMINAL:
            if job["status"] != "succeeded":
                raise RuntimeError(f"session {job_id} {job['status']}: {job['error']}")
            return Sample(job, time.perf_counter() - began)
        await asyncio.sleep(poll_s)
    raise RuntimeError(f"session {job_id} did not finish in 120 s (deadlock?)")


async def critical_path_case(service: Service, repeats: int) -> tuple[list[Sample], Tenant, int]:
    tenant = Tenant(service)
    async with httpx.AsyncClient(timeout=30) as client:
        created = await client.post(
            tenant.org("/projects"), json={"name": "bench"}, headers=tenant.headers
        )
        project_id = int(created.json()["id"])
        await run_session(client, tenant, project_id, 0.05, candidates=2, max_iterations=1)
        samples = [
            await run_session(
                client, tenant, project_id, 0.1, candidates=CANDIDATES, max_iterations=ITERATIONS
            )
            for _ in range(repeats)
        ]
    for sample in samples:
        assert sample.job["result"]["iterations_completed"] == ITERATIONS
    return samples, tenant, project_id


async def concurrency_case(tenant: Tenant, project_id: int, sessions: int) -> list[Sample]:
    """Submit `sessions` at once, then watch them with one list request a second (polling each
    would put a request's worth of CPU per session on the machine being measured)."""
    body = {
        "prompt": "Build a URL shortener",
        **RESEARCH,
        "agents": ["backend", "frontend"],
        "candidates": CANDIDATES,
        "max_iterations": ITERATIONS,
    }
    url = tenant.org(f"/projects/{project_id}/pro-mode")
    async with httpx.AsyncClient(timeout=60) as client:
        began = time.perf_counter()
        submitted = await asyncio.gather(
            *(client.post(url, json=body, headers=tenant.headers) for _ in range(sessions))
        )
        ids = {response.raise_for_status().json()["id"] for response in submitted}
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline:
            await asyncio.sleep(1.0)
            listed = await client.get(
                tenant.org("/jobs"),
                params={"kind": "promode.session", "limit": 100},
                headers=tenant.headers,
            )
            jobs = [job for job in listed.json()["items"] if job["id"] in ids]
            if all(job["status"] in TERMINAL for job in jobs) and len(jobs) == len(ids):
                elapsed = time.perf_counter() - began
                return [Sample(job, elapsed) for job in jobs]
    raise RuntimeError("the sessions did not all finish in 300 s (deadlock?)")


async def reset_postgres(url: str) -> None:
    """Create the benchmark's own database if missing, with an empty `public` schema."""
    import asyncpg
    from sqlalchemy.engine import make_url

    target = make_url(url).set(drivername="postgresql")
    admin = await asyncpg.connect(target.set(database="postgres").render_as_string(False))
    try:
        if not await admin.fetchval(
            "SELECT 1 FROM pg_database WHERE datname = $1", target.database
        ):
            await admin.execute(f'CREATE DATABASE "{target.database}"')
    finally:
        await admin.close()
    connection = await asyncpg.connect(target.render_as_string(False))
    try:
        await connection.execute("DROP SCHEMA IF EXISTS public CASCADE; CREATE SCHEMA public")
    finally:
        await connection.close()


@contextmanager
def workers(count: int, concurrency: int, env: dict[str, str]) -> Iterator[None]:
    processes = [
        subprocess.Popen(
            [GENWAY, "worker", "--concurrency", str(concurrency)],
            env=env,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for _ in range(count)
    ]
    try:
        yield
    finally:
        for process in processes:
            process.terminate()
        for process in processes:
            process.wait(timeout=30)


def describe(label: str, samples: list[Sample], critical_s: float, floor_s: float) -> str:
    server = statistics.median(s.server_s for s in samples)
    client = statistics.median(s.client_s for s in samples)
    return (
        f"| {label} | {server:.3f} | {client:.3f} | {server / critical_s:.2f} "
        f"| {server / floor_s:.2f} |"
    )


async def main(args: argparse.Namespace) -> None:
    latency_s = args.latency_ms / 1000
    critical_s = critical_path_calls(CANDIDATES, ITERATIONS) * latency_s
    fake = FakeOpenAIServer(api_key=None)
    fake.latency_s = latency_s
    fake.default_reply = Reply(text=scripted_reply)
    await fake.start()
    floor_s = await measure_floor(fake.base_url, args.repeats)
    crowd_floor_s = await crowd_floor(fake.base_url, args.sessions, args.concurrency)
    rows: list[str] = []
    with tempfile.TemporaryDirectory() as scratch:
        routes = Path(scratch) / "routing.json"
        routes.write_text(json.dumps({task: [MODEL] for task in TASKS}))
        env = {
            "GENWAY_OPENAI_BASE_URL": fake.base_url,
            "GENWAY_ROUTING_FILE": str(routes),
            "GENWAY_LEASE_S": "3600",
            "GENWAY_WORKER_CONCURRENCY": str(args.concurrency),
        }
        with genway_service({**env, "GENWAY_EMBEDDED_WORKER": "true"}) as service:
            samples, _tenant, _project = await critical_path_case(service, args.repeats)
            rows.append(describe("embedded (SQLite)", samples, critical_s, floor_s))
        await reset_postgres(args.pg_url)
        distributed = {
            **env,
            "GENWAY_DATABASE_URL": args.pg_url,
            "GENWAY_REDIS_URL": args.redis_url,
            "GENWAY_EMBEDDED_WORKER": "false",
        }
        with ExitStack() as stack:
            service = stack.enter_context(genway_service(distributed))
            stack.enter_context(workers(2, args.concurrency, {**os.environ, **service.env}))
            samples, tenant, project = await critical_path_case(service, args.repeats)
            rows.append(describe("distributed (PostgreSQL + Redis)", samples, critical_s, floor_s))
            began = time.perf_counter()
            crowd = await concurrency_case(tenant, project, args.sessions)
            elapsed = time.perf_counter() - began
    await fake.stop()
    report(args, rows, crowd, elapsed, critical_s, (floor_s, crowd_floor_s))


def report(
    args: argparse.Namespace,
    rows: list[str],
    crowd: list[Sample],
    elapsed: float,
    critical_s: float,
    floors: tuple[float, float],
) -> None:
    floor_s, crowd_floor_s = floors
    slots = 2 * args.concurrency
    bound = math.ceil(args.sessions / slots) * critical_s
    first = min(parse_time(s.job["created_at"]) for s in crowd)
    last = max(parse_time(s.job["finished_at"]) for s in crowd)
    makespan = (last - first).total_seconds()
    durations = sorted(s.server_s for s in crowd)
    print(
        f"promode: {CANDIDATES} candidates x {ITERATIONS} iterations, fake provider at "
        f"{args.latency_ms} ms per call; critical path {critical_s:.2f} s "
        f"({critical_path_calls(CANDIDATES, ITERATIONS)} calls); the same call graph made "
        f"directly through the SDK, without Genway: {floor_s:.3f} s"
    )
    print("| setup (1 session) | wall s (server) | wall s (client) | vs critical path | vs SDK |")
    print("| --- | --- | --- | --- | --- |")
    for row in rows:
        print(row)
    print(
        f"concurrency: {args.sessions} sessions on 2 workers x {args.concurrency} slots: "
        f"{sum(s.job['status'] == 'succeeded' for s in crowd)}/{args.sessions} succeeded; "
        f"makespan {makespan:.2f} s (client {elapsed:.2f} s) vs lower bound {bound:.2f} s "
        f"(ratio {makespan / bound:.2f}); the same call graphs made directly through the SDK "
        f"from two processes: {crowd_floor_s:.2f} s (ratio {makespan / crowd_floor_s:.2f}); "
        f"per-session p50 {statistics.median(durations):.2f} s, max {durations[-1]:.2f} s"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=4, help="slots per worker")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--replay", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--graphs", type=int, default=1, help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.replay:
        print(
            asyncio.run(
                replay_call_graph(
                    arguments.replay, arguments.repeats, arguments.graphs, arguments.concurrency
                )
            )
        )
    else:
        asyncio.run(main(arguments))

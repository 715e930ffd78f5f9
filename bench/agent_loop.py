"""The code agent's tool loop against a fake OpenAI-compatible provider answering in a fixed time.

A scripted run of `--steps` (20) model turns: each turn calls one tool (reading, writing and
editing files of the project's checkout, and every fourth turn a sandboxed command, `python3 -c
pass`), the last one calls `finish`; the fake (`tests/fakes/openai_server.py`, real wire
protocol, streamed tool calls) waits `--latency-ms` (100) before every answer.

  one run: the run's wall time (job `created_at` -> `finished_at`, so claiming, the checkout,
      the commit and the diff stat are in it) against the sum of the model latencies and the
      command times (each command timed directly through `run_sandboxed` in this process, same
      limits): the overhead ratio (goal <= 1.1). Embedded (`genway serve`, SQLite, embedded
      worker); median of `--repeats` runs after a warm-up run. Also against the same turns made
      directly through the same SDK from a process of its own (the conversation growing the
      same way, nothing recorded) plus the commands: what the machine costs before Genway.
  concurrency: `--runs` (20) runs submitted at once to 2 `genway worker`s of `--concurrency`
      (10) slots (PostgreSQL + Redis): the makespan against one run's floor (all 20 can run at
      once, so the floor is the same), against the crowd's turns made directly through the SDK
      from two processes (half the runs at once each), and the per-run wall times.

Run: .venv/bin/python bench/agent_loop.py [--latency-ms 100] [--steps 20] [--runs 20]
Needs bubblewrap for the commands (without it the turns call no command and it says so), and
PostgreSQL (--pg-url; the database is created if missing and its schema replaced) and Redis
(--redis-url) for the concurrency part.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import sys
import tempfile
import time
from contextlib import ExitStack
from datetime import datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.append(str(BENCH.parent))  # for tests.fakes

import httpx  # noqa: E402
from common import Service, genway_service, reset_postgres  # noqa: E402
from tests.fakes.openai_server import FakeOpenAIServer, Reply  # noqa: E402

from genway.sandbox import SandboxLimits, run_sandboxed, sandbox_unavailable_reason  # noqa: E402
from promode import Tenant, workers  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/genway_bench_agent_loop"
DEFAULT_REDIS = "redis://127.0.0.1:6379/7"
MODEL = "openai:gpt-4o-mini"
TASKS = ("research", "wireframe", "code", "qa", "pedagogy", "judge", "synthesis")
COMMAND = "python3 -c pass"
TERMINAL = {"succeeded", "failed", "cancelled"}


def turn_calls(step: int, steps: int, commands: bool) -> list[dict[str, Any]]:
    """The tool call of turn `step` (0-based) of a scripted run."""
    if step == steps - 1:
        return [{"name": "finish", "arguments": {"summary": "scripted run done"}}]
    if commands and step % 4 == 3:
        return [{"name": "run_command", "arguments": {"command": COMMAND}}]
    kind = step % 3
    if kind == 0:
        return [{"name": "read_file", "arguments": {"path": "calc.py"}}]
    if kind == 1:
        content = f"step {step}\n"
        return [
            {"name": "write_file", "arguments": {"path": f"notes/{step}.txt", "content": content}}
        ]
    return [
        {
            "name": "edit_file",
            "arguments": {"path": "calc.py", "old_text": "a - b", "new_text": "a - b  # seen"},
        }
    ]


def scripted(steps: int, commands: bool) -> Reply:
    def calls(body: dict[str, Any]) -> list[dict[str, Any]]:
        done = sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")
        return turn_calls(done, steps, commands)

    return Reply(text="", tool_calls=calls)


def command_count(steps: int, commands: bool) -> int:
    return sum(
        1 for step in range(steps) if turn_calls(step, steps, commands)[0]["name"] == "run_command"
    )


async def command_seconds(count: int) -> float:
    """`count` sandboxed commands run directly, one after another (the floor's command part)."""
    if not count:
        return 0.0
    with tempfile.TemporaryDirectory() as workdir:
        await run_sandboxed(COMMAND, workdir=Path(workdir), limits=SandboxLimits())
        began = time.perf_counter()
        for _ in range(count):
            await run_sandboxed(COMMAND, workdir=Path(workdir), limits=SandboxLimits())
        return time.perf_counter() - began


async def replay_turns(
    base_url: str, steps: int, commands: bool, repeats: int, parallel: int = 1
) -> float:
    """The run's model turns made directly through the same SDK and fake, without Genway: the
    conversation grows the same way (each tool result a short line), nothing is recorded. With
    `parallel` > 1, that many runs at once (seconds until the last ends)."""
    from genway.agents.system_prompts import system_prompt
    from genway.agents.tools import work_specs
    from genway.engines.llm.providers import Message
    from genway.engines.llm.router import ModelRouter, build_providers

    router = ModelRouter({"code": [MODEL]}, build_providers(base_url, None, None, None))
    tools = work_specs(commands=commands)
    system = system_prompt("tools_code")

    async def run() -> None:
        messages: list[Message] = [{"role": "user", "content": "Scripted run"}]
        for _ in range(steps):
            answer = await router.complete(
                "code", messages, system=system, tools=tools, on_delta=lambda _text: None
            )
            messages.append(
                {"role": "assistant", "content": answer.text, "tool_calls": list(answer.tool_calls)}
            )
            for call in answer.tool_calls:
                result = "done"
                messages.append(
                    {
                        "role": "tool",
                        "tool_call_id": call.id,
                        "name": call.name,
                        "content": result,
                        "is_error": False,
                    }
                )

    await run()
    timings = []
    for _ in range(repeats):
        began = time.perf_counter()
        await asyncio.gather(*(run() for _ in range(parallel)))
        timings.append(time.perf_counter() - began)
    await router.aclose()
    return statistics.median(timings)


async def measure_replay(
    base_url: str, steps: int, commands: bool, repeats: int, parallel: int = 1
) -> float:
    """`replay_turns` in a process of its own, as a Genway worker is."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        __file__,
        "--replay",
        base_url,
        "--steps",
        str(steps),
        "--repeats",
        str(repeats),
        "--runs",
        str(parallel),
        *(["--no-commands"] if not commands else []),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    if process.returncode:
        raise RuntimeError("the direct replay failed")
    return float(out.decode().strip())


def parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def wall_s(job: dict[str, Any]) -> float:
    return (parse_time(job["finished_at"]) - parse_time(job["created_at"])).total_seconds()


def claim_s(job: dict[str, Any]) -> float:
    return (parse_time(job["started_at"]) - parse_time(job["created_at"])).total_seconds()


async def project(client: httpx.AsyncClient, tenant: Tenant) -> int:
    created = await client.post(
        tenant.org("/projects"), json={"name": "calc"}, headers=tenant.headers
    )
    pid = int(created.raise_for_status().json()["id"])
    for path, content in (
        ("calc.py", "def add(a, b):\n    return a - b\n"),
        ("README.md", "# calc\n"),
    ):
        put = await client.put(
            tenant.org(f"/projects/{pid}/files"),
            json={"path": path, "content": content},
            headers=tenant.headers,
        )
        put.raise_for_status()
    return pid


async def start_run(client: httpx.AsyncClient, tenant: Tenant, pid: int, steps: int) -> int:
    body = {"prompt": "Scripted run", "project_id": pid, "max_steps": steps}
    response = await client.post(tenant.org("/agent/run"), json=body, headers=tenant.headers)
    return int(response.raise_for_status().json()["id"])


async def wait_all(
    client: httpx.AsyncClient, tenant: Tenant, ids: set[int]
) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 300
    while time.monotonic() < deadline:
        await asyncio.sleep(0.25 if len(ids) == 1 else 1.0)
        listed = await client.get(
            tenant.org("/jobs"), params={"kind": "agent.run", "limit": 100}, headers=tenant.headers
        )
        jobs = [job for job in listed.json()["items"] if job["id"] in ids]
        if len(jobs) == len(ids) and all(job["status"] in TERMINAL for job in jobs):
            failed = [job for job in jobs if job["status"] != "succeeded"]
            if failed:
                raise RuntimeError(
                    f"run {failed[0]['id']} {failed[0]['status']}: {failed[0]['error']}"
                )
            return jobs
    raise RuntimeError("the runs did not finish in 300 s")


async def one_run_case(service: Service, steps: int, repeats: int) -> list[dict[str, Any]]:
    tenant = Tenant(service)
    async with httpx.AsyncClient(timeout=30) as client:
        pid = await project(client, tenant)
        await wait_all(client, tenant, {await start_run(client, tenant, pid, steps)})
        return [
            (await wait_all(client, tenant, {await start_run(client, tenant, pid, steps)}))[0]
            for _ in range(repeats)
        ]


async def crowd_case(service: Service, steps: int, runs: int) -> tuple[list[dict[str, Any]], float]:
    tenant = Tenant(service)
    async with httpx.AsyncClient(timeout=60) as client:
        pid = await project(client, tenant)
        await wait_all(client, tenant, {await start_run(client, tenant, pid, steps)})
        began = time.perf_counter()
        ids = set(
            await asyncio.gather(*(start_run(client, tenant, pid, steps) for _ in range(runs)))
        )
        jobs = await wait_all(client, tenant, ids)
        return jobs, time.perf_counter() - began


async def main(args: argparse.Namespace) -> None:
    commands = sandbox_unavailable_reason() is None
    if not commands:
        print(f"commands skipped: {sandbox_unavailable_reason()}")
    count = command_count(args.steps, commands)
    latency_s = args.latency_ms / 1000
    commands_s = await command_seconds(count)
    floor_s = args.steps * latency_s + commands_s
    fake = FakeOpenAIServer(api_key=None)
    fake.latency_s = latency_s
    fake.default_reply = scripted(args.steps, commands)
    await fake.start()
    direct_s = await measure_replay(fake.base_url, args.steps, commands, args.repeats)
    # The crowd without Genway: two processes (the two workers), half the runs each at once.
    halves = (args.runs - args.runs // 2, args.runs // 2)
    crowd_direct_s = max(
        await asyncio.gather(
            *(measure_replay(fake.base_url, args.steps, commands, 1, half) for half in halves)
        )
    )
    with tempfile.TemporaryDirectory() as scratch:
        routes = Path(scratch) / "routing.json"
        routes.write_text(json.dumps({task: [MODEL] for task in TASKS}))
        env = {
            "GENWAY_OPENAI_BASE_URL": fake.base_url,
            "GENWAY_ROUTING_FILE": str(routes),
            "GENWAY_LEASE_S": "3600",
            "GENWAY_WORKER_CONCURRENCY": str(args.concurrency),
            "GENWAY_AGENT_MAX_STEPS": str(args.steps),
        }
        with genway_service({**env, "GENWAY_EMBEDDED_WORKER": "true"}) as service:
            single = await one_run_case(service, args.steps, args.repeats)
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
            crowd, client_s = await crowd_case(service, args.steps, args.runs)
    await fake.stop()
    floors = (floor_s, direct_s + commands_s, crowd_direct_s + commands_s)
    report(args, single, crowd, client_s, floors, (count, commands_s))


def report(
    args: argparse.Namespace,
    single: list[dict[str, Any]],
    crowd: list[dict[str, Any]],
    client_s: float,
    floors: tuple[float, float, float],
    commands: tuple[int, float],
) -> None:
    floor_s, direct_s, crowd_direct_s = floors
    count, commands_s = commands
    run_s = statistics.median(wall_s(job) for job in single)
    steps = {job["result"]["steps"] for job in single + crowd}
    first = min(parse_time(job["created_at"]) for job in crowd)
    last = max(parse_time(job["finished_at"]) for job in crowd)
    makespan = (last - first).total_seconds()
    walls = sorted(wall_s(job) for job in crowd)
    print(
        f"agent_loop: {args.steps}-step scripted run, fake provider at {args.latency_ms} ms per "
        f"turn, {count} sandboxed commands ({commands_s:.3f} s run directly); floor "
        f"{floor_s:.3f} s; steps taken {sorted(steps)}"
    )
    print(
        f"the same turns made directly through the SDK, plus the commands: {direct_s:.3f} s "
        f"(what this machine costs before Genway does anything)"
    )
    print("| case | wall s | vs floor | vs direct SDK + commands |")
    print("| --- | --- | --- | --- |")
    print(
        f"| one run, embedded (SQLite), median of {args.repeats} | {run_s:.3f} "
        f"| {run_s / floor_s:.2f} | {run_s / direct_s:.2f} |"
    )
    print(
        f"| {args.runs} runs at once, 2 workers x {args.concurrency} slots (PostgreSQL + Redis), "
        f"makespan | {makespan:.3f} | {makespan / floor_s:.2f} | {makespan / crowd_direct_s:.2f} |"
    )
    print(
        f"the crowd's turns made directly through the SDK from two processes, "
        f"{args.runs // 2} runs at once each, plus one run's commands: {crowd_direct_s:.3f} s"
    )
    claim = statistics.median(claim_s(job) for job in single)
    print(f"one run: created -> started (claim) median {claim:.3f} s")
    print(
        f"per-run wall in the crowd: p50 {statistics.median(walls):.3f} s, max {walls[-1]:.3f} s; "
        f"client-side makespan {client_s:.3f} s"
    )


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency-ms", type=int, default=100)
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--runs", type=int, default=20)
    parser.add_argument("--concurrency", type=int, default=10, help="slots per worker")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--replay", metavar="URL", help=argparse.SUPPRESS)
    parser.add_argument("--no-commands", action="store_true", help=argparse.SUPPRESS)
    return parser.parse_args()


if __name__ == "__main__":
    arguments = parse_args()
    if arguments.replay:
        replayed = replay_turns(
            arguments.replay,
            arguments.steps,
            not arguments.no_commands,
            arguments.repeats,
            arguments.runs,
        )
        print(asyncio.run(replayed))
    else:
        asyncio.run(main(arguments))

"""How good is "when will my job run": the error of `estimated_start_at` on a synthetic mix.

A real `genway serve` (SQLite, embedded worker of `--slots` slots). Two organizations submit
`diagnostic.sleep` jobs in bursts: `small` (basic tier: 2 jobs at a time) mostly 0.5 s jobs
with an occasional 3 s one, `big` (enterprise, no limit) mostly 2 s jobs. A warm-up burst gives
both some history. Every job is read right after its submission (its `estimated_start_at` and
`queue_position` then) and every queued job is read again through the job list every
`--poll` seconds while it waits; at the end each job's actual `started_at` is compared.

Figures: the median absolute error of the estimate at submission, in seconds and over the mean
wait, against two baselines from the same run and the same reads: "now" (the job starts at
once) and "naive" (position in the global queue - 1, times the mean run time of every job
finished so far, over the slots). Also the error of the estimates read while queued.

Run: .venv/bin/python bench/eta.py [--bursts 5] [--every 8] [--slots 4] [--seed 7]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402
from common import Service, genway_service  # noqa: E402

RELAXED = {"jobs_per_minute": 100_000, "requests_per_window": 1_000_000}
RELAXED |= {"user_requests_per_window": 1_000_000}


@dataclass
class Submitted:
    org: str
    id: int
    seconds: float
    read_at: datetime
    estimate: datetime | None
    position: int | None
    naive: datetime
    queued_reads: list[tuple[datetime, datetime]] = field(default_factory=list)
    started_at: datetime | None = None


class Org:
    def __init__(self, service: Service, name: str, tier: str) -> None:
        created = service.cli(
            "orgs", "create", "--name", name, "--owner-email", f"{name}@example.com", "--tier", tier
        )
        self.name = name
        self.jobs = f"{service.url}/v1/organizations/{created['organization_id']}/jobs"
        self.headers = {"Authorization": f"Bearer {created['api_key']}"}


def parse(value: str | None) -> datetime | None:
    return datetime.fromisoformat(value) if value else None


def at(value: str) -> datetime:
    return datetime.fromisoformat(value)


class Mix:
    def __init__(self, client: httpx.AsyncClient, slots: int) -> None:
        self.client = client
        self.slots = slots
        self.jobs: dict[int, Submitted] = {}
        self.finished_runs: dict[int, float] = {}

    def mean_run_s(self) -> float:
        runs = self.finished_runs.values()
        return statistics.fmean(runs) if runs else 1.0

    async def submit(self, org: Org, seconds: float) -> None:
        body = {"kind": "diagnostic.sleep", "input": {"seconds": seconds}}
        created = await self.client.post(org.jobs, json=body, headers=org.headers)
        created.raise_for_status()
        job_id = int(created.json()["id"])
        read = await self.client.get(f"{org.jobs}/{job_id}", headers=org.headers)
        read_at = datetime.now(UTC)
        job = read.json()
        position = job["queue_position"]
        ahead = (position - 1) if position else 0
        naive = read_at.timestamp() + ahead * self.mean_run_s() / self.slots
        self.jobs[job_id] = Submitted(
            org.name,
            job_id,
            seconds,
            read_at,
            parse(job["estimated_start_at"]),
            position,
            datetime.fromtimestamp(naive, UTC),
            started_at=parse(job["started_at"]),
        )

    async def poll(self, orgs: list[Org], every: float, stop: asyncio.Event) -> None:
        """Read every organization's queued jobs (with their estimates) and the finished ones'
        run times, until `stop`."""
        while not stop.is_set():
            for org in orgs:
                page = await self.client.get(org.jobs, params={"limit": 100}, headers=org.headers)
                now = datetime.now(UTC)
                for job in page.json()["items"]:
                    mine = self.jobs.get(job["id"])
                    if mine is None:
                        continue
                    estimate = parse(job["estimated_start_at"])
                    if job["status"] == "queued" and estimate is not None:
                        mine.queued_reads.append((now, estimate))
                    mine.started_at = mine.started_at or parse(job["started_at"])
                    if job["status"] == "succeeded":
                        run = at(job["finished_at"]) - at(job["started_at"])
                        self.finished_runs[job["id"]] = run.total_seconds()
            await asyncio.sleep(every)


def burst(rng: random.Random) -> list[tuple[str, float]]:
    small = [("small", 3.0 if rng.random() < 0.15 else 0.5) for _ in range(rng.randint(4, 8))]
    big = [("big", 2.0 if rng.random() < 0.85 else 1.0) for _ in range(rng.randint(2, 5))]
    mixed = small + big
    rng.shuffle(mixed)
    return mixed


def mae(errors: list[float]) -> float:
    return statistics.median(abs(e) for e in errors) if errors else float("nan")


async def run(service: Service, args: argparse.Namespace) -> None:
    orgs = {"small": Org(service, "small", "basic"), "big": Org(service, "big", "enterprise")}
    rng = random.Random(args.seed)
    stop = asyncio.Event()
    began = time.monotonic()
    async with httpx.AsyncClient(timeout=30) as client:
        mix = Mix(client, args.slots)
        poller = asyncio.create_task(mix.poll(list(orgs.values()), args.poll, stop))
        for org, seconds in [("small", 0.5)] * 6 + [("big", 2.0)] * 5:  # warm-up: history
            await mix.submit(orgs[org], seconds)
        warmup = set(mix.jobs)
        await asyncio.sleep(args.every)
        for _ in range(args.bursts):
            for org, seconds in burst(rng):
                await mix.submit(orgs[org], seconds)
            await asyncio.sleep(args.every)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and any(j.started_at is None for j in mix.jobs.values()):
            await asyncio.sleep(0.5)
        stop.set()
        await poller
    measured = [j for k, j in mix.jobs.items() if k not in warmup and j.started_at is not None]
    report(measured, time.monotonic() - began, len(mix.jobs) - len(measured), args)


def report(jobs: list[Submitted], elapsed: float, left: int, args: argparse.Namespace) -> None:
    def err(predicted: datetime, job: Submitted) -> float:
        assert job.started_at is not None
        return (predicted - job.started_at).total_seconds()

    waits = [err(j.read_at, j) * -1 for j in jobs]
    # A job already running when read has no estimate: it says "started", i.e. the read time.
    eta = [err(j.estimate or j.read_at, j) for j in jobs]
    now = [err(j.read_at, j) for j in jobs]
    naive = [err(j.naive, j) for j in jobs]
    queued = [err(e, j) for j in jobs for _at, e in j.queued_reads]
    queued_now = [err(at, j) for j in jobs for at, _e in j.queued_reads]
    mean_wait = statistics.fmean(waits)
    figures: dict[str, Any] = {
        "jobs": len(jobs),
        "with_estimate_at_submit": sum(j.estimate is not None for j in jobs),
        "unstarted_or_warmup": left,
        "mean_wait_s": round(mean_wait, 3),
        "max_wait_s": round(max(waits), 3),
        "mae_eta_s": round(mae(eta), 3),
        "mae_naive_s": round(mae(naive), 3),
        "mae_now_s": round(mae(now), 3),
        "eta_over_mean_wait": round(mae(eta) / mean_wait, 3),
        "eta_over_naive": round(mae(eta) / mae(naive), 3),
        "eta_over_now": round(mae(eta) / mae(now), 3),
        "mean_signed_error_eta_s": round(statistics.fmean(eta), 3) if eta else None,
        "queued_reads": len(queued),
        "mae_eta_while_queued_s": round(mae(queued), 3),
        "mae_now_while_queued_s": round(mae(queued_now), 3),
        "seconds": round(elapsed, 1),
    }
    # The jobs that did wait (≥ 0.5 s): where an estimate is worth reading.
    waited = [j for j in jobs if -err(j.read_at, j) >= 0.5]
    if waited:
        figures["waited_jobs"] = len(waited)
        figures["waited_mean_wait_s"] = round(
            statistics.fmean(-err(j.read_at, j) for j in waited), 3
        )
        for name, predicted in (("eta", "estimate"), ("naive", "naive"), ("now", "read_at")):
            errors = [err(getattr(j, predicted) or j.read_at, j) for j in waited]
            figures[f"waited_mae_{name}_s"] = round(mae(errors), 3)
        figures["waited_eta_over_naive"] = round(
            figures["waited_mae_eta_s"] / figures["waited_mae_naive_s"], 3
        )
    for org in ("small", "big"):
        mine = [err(j.estimate or j.read_at, j) for j in jobs if j.org == org]
        figures[f"mae_eta_{org}_s"] = round(mae(mine), 3)
        figures[f"mean_signed_error_eta_{org}_s"] = round(statistics.fmean(mine), 3)
        figures[f"mean_wait_{org}_s"] = round(
            statistics.fmean(-err(j.read_at, j) for j in jobs if j.org == org), 3
        )
    print(json.dumps(figures, indent=2))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bursts", type=int, default=5)
    parser.add_argument("--every", type=float, default=8.0, help="seconds between bursts")
    parser.add_argument("--slots", type=int, default=4, help="the embedded worker's slots")
    parser.add_argument("--poll", type=float, default=0.5, help="seconds between list reads")
    parser.add_argument("--seed", type=int, default=7)
    args = parser.parse_args()
    env = {
        "GENWAY_EMBEDDED_WORKER": "true",
        "GENWAY_WORKER_CONCURRENCY": str(args.slots),
        "GENWAY_TIER_LIMITS": json.dumps({"basic": RELAXED, "enterprise": RELAXED}),
    }
    with genway_service(env) as service:
        asyncio.run(run(service, args))


if __name__ == "__main__":
    main()

"""Jobs submitted over HTTP: `POST /v1/organizations/{org_id}/jobs` (no-op `diagnostic.sleep`)
from 32 concurrent keep-alive clients until N jobs are in, then until every job has finished.

Prints submits/s, p50/p99 submit latency and end-to-end jobs/s (first submit -> last job
finished, read from the jobs' `finished_at`), against a baseline measured in the same run on the
same server: the same 32 clients doing `GET /health/live` (before the submissions and after the
jobs have finished; the mean of the two).

Modes: embedded (`genway serve` with its embedded worker, SQLite) and distributed (PostgreSQL +
Redis, `GENWAY_EMBEDDED_WORKER=false` plus one `genway worker` process).

Run: .venv/bin/python bench/http_jobs.py [--jobs 600] [--modes embedded,distributed]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (
    GENWAY,
    LoadResult,
    genway_service,
    load,
    post_load,
    reset_postgres,
    worker_process,
)
from sqlalchemy import func, select

from genway.db import Database
from genway.jobs.models import Job
from genway.jobs.states import TERMINAL, JobStatus

BODY = json.dumps({"kind": "diagnostic.sleep", "input": {"seconds": 0}}).encode()
DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/genway_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
DONE_TIMEOUT_S = 120.0
# A long lease, so the worker's lease heartbeat never fires during the run: `Worker._heartbeat`
# cancels jobs claimed while its renew query is in flight (see bench/RESULTS.md).
LEASE_S = "3600"


async def wait_finished(database: Database, count: int) -> tuple[float, float, int]:
    """Wait until `count` jobs have ended; (first created_at, last finished_at, failures)."""
    jobs = Job.__table__
    deadline = time.monotonic() + DONE_TIMEOUT_S
    while True:
        async with database.sessions() as session:
            done = await session.scalar(select(func.count()).where(jobs.c.status.in_(TERMINAL)))
        if done >= count:
            break
        if time.monotonic() > deadline:
            raise RuntimeError(f"only {done}/{count} jobs finished")
        await asyncio.sleep(0.1)
    async with database.sessions() as session:
        first, last = (
            await session.execute(select(func.min(jobs.c.created_at), func.max(jobs.c.finished_at)))
        ).one()
        failed = await session.scalar(
            select(func.count()).where(jobs.c.status != JobStatus.SUCCEEDED)
        )
    return first.timestamp(), last.timestamp(), int(failed or 0)


async def measure(
    url: str, database_url: str, org_id: int, key: str, jobs: int, seconds: float, clients: int
) -> dict[str, float]:
    auth = {"Authorization": f"Bearer {key}"}
    await load(f"{url}/health/live", {}, seconds=1)  # warm-up
    before = await load(f"{url}/health/live", {}, concurrency=clients, seconds=seconds)
    database = Database(database_url)
    try:
        began = time.time()
        submits: LoadResult = await post_load(
            f"{url}/v1/organizations/{org_id}/jobs", auth, BODY, total=jobs, concurrency=clients
        )
        assert submits.errors == 0, f"{submits.errors} submissions failed"
        assert submits.requests == jobs, f"only {submits.requests}/{jobs} submitted in time"
        _first, last, failed = await wait_finished(database, jobs)
        assert failed == 0, f"{failed} jobs did not succeed"
    finally:
        await database.dispose()
    after = await load(f"{url}/health/live", {}, concurrency=clients, seconds=seconds)
    assert before.errors == 0 and after.errors == 0
    baseline = (before.rps + after.rps) / 2
    return {
        "baseline": baseline,
        "baseline_before": before.rps,
        "baseline_after": after.rps,
        "submit_rps": submits.rps,
        "submit_p50": submits.p50,
        "submit_p99": submits.percentile(0.99),
        "e2e": jobs / (last - began),
        "ratio": submits.rps / baseline,
    }


def run_mode(mode: str, args: argparse.Namespace) -> dict[str, float]:
    env = {
        "GENWAY_LEASE_S": LEASE_S,
        "GENWAY_WORKER_CONCURRENCY": str(args.concurrency),
        "GENWAY_REDIS_URL": "",
    }
    if mode == "embedded":
        env["GENWAY_EMBEDDED_WORKER"] = "true"
    else:
        asyncio.run(reset_postgres(args.pg_url))
        env |= {
            "GENWAY_EMBEDDED_WORKER": "false",
            "GENWAY_DATABASE_URL": args.pg_url,
            "GENWAY_REDIS_URL": args.redis_url,
        }
    with genway_service(env) as service:
        # enterprise: limits far above this load (free allows 10 jobs a minute, 1 at a time)
        created = service.cli(
            "orgs", "create", "--name", "bench", "--owner-email", "b@bench.io",
            "--tier", "enterprise",
        )  # fmt: skip
        data_dir = Path(service.env["GENWAY_DATA_DIR"])
        database_url = service.env.get(
            "GENWAY_DATABASE_URL", f"sqlite+aiosqlite:///{data_dir / 'genway.db'}"
        )
        org_id, key = int(str(created["organization_id"])), str(created["api_key"])

        def go() -> dict[str, float]:
            return asyncio.run(
                measure(
                    service.url, database_url, org_id, key, args.jobs, args.seconds, args.clients
                )
            )

        if mode == "embedded":
            return go()
        worker = [GENWAY, "worker", "--concurrency", str(args.concurrency)]
        with worker_process(worker, service.env, data_dir / "worker.log"):
            return go()


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=600, help="jobs submitted per mode")
    parser.add_argument("--clients", type=int, default=32, help="concurrent connections")
    parser.add_argument("--seconds", type=float, default=3.0, help="each baseline measurement")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs at once in the worker")
    parser.add_argument("--modes", default="embedded,distributed")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    args = parser.parse_args()
    results = {}
    for mode in [m.strip() for m in args.modes.split(",") if m.strip()]:
        began = time.perf_counter()
        results[mode] = run_mode(mode, args)
        print(f"  [{mode} done in {time.perf_counter() - began:.0f} s]", file=sys.stderr)
    print(
        f"http_jobs: POST /v1/organizations/{{org_id}}/jobs, no-op jobs, {args.clients} clients, "
        f"{args.jobs} jobs per mode, worker concurrency {args.concurrency}"
    )
    print(
        f"  {'mode':<34}{'/health/live':>13}{'submits/s':>11}{'ratio':>7}"
        f"{'submit p50':>12}{'p99':>10}{'e2e jobs/s':>12}"
    )
    labels = {
        "embedded": "embedded (SQLite, in-process worker)",
        "distributed": "distributed (PG + Redis, 1 worker)",
    }
    for mode, r in results.items():
        print(
            f"  {labels[mode]:<34}{r['baseline']:9.0f} r/s{r['submit_rps']:11.0f}{r['ratio']:7.2f}"
            f"{r['submit_p50']:9.1f} ms{r['submit_p99']:7.1f} ms{r['e2e']:12.0f}"
        )
    print("  ratio = submits/s / baseline /health/live req/s (mean of before and after)")
    for mode, r in results.items():
        before, after = r["baseline_before"], r["baseline_after"]
        print(f"  {mode}: baseline before {before:.0f}, after {after:.0f} r/s")


if __name__ == "__main__":
    main()

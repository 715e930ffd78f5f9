"""Where one worker's CPU goes: N no-op jobs (`diagnostic.sleep`, `{"seconds": 0}`) are queued
first, then one in-process worker (concurrency 8) drains them under cProfile. Prints jobs/s of
the drain, how many claims and writer batches it took, and the top functions by own time and by
cumulative time within Genway's code.

Run: .venv/bin/python bench/worker_profile.py [--jobs 1000] [--pg-url URL] [--top 25]
(without --pg-url: SQLite in a temporary directory; with it, that database's schema is replaced)
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import io
import pstats
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import reset_postgres
from sqlalchemy import func, select

import genway.worker.runner as runner_module
import genway.worker.writer as writer_module
from genway.config import Settings
from genway.jobs.models import Job
from genway.jobs.schemas import JobCreate
from genway.jobs.service import Submitter, create_job
from genway.migrate import migrate
from genway.orgs.models import Tier
from genway.orgs.service import create_organization, create_user
from genway.worker.runner import WorkerOptions, running_worker
from genway.worker.service import build_worker, runtime


async def drain(url: str, jobs: int, top: int) -> None:
    if url.startswith("postgresql"):
        await reset_postgres(url)
    await migrate(url)
    settings = Settings(
        database_url=url,
        data_dir=Path(tempfile.mkdtemp()),
        embedded_worker=False,
        log_level="WARNING",
        comfyui_urls=[],
    )
    async with runtime(settings) as rt:
        async with rt.database.transaction() as session:
            owner = await create_user(session, "profile@bench.io")
            org = await create_organization(session, "profile", owner, tier=Tier.ENTERPRISE)
        submitter = Submitter(org.id, owner.id, None)
        spec = JobCreate(kind="diagnostic.sleep", input={"seconds": 0})
        for _ in range(jobs):
            async with rt.database.transaction() as session:
                await create_job(session, submitter, spec, max_input_bytes=1 << 20)
        counts = {"claims": 0, "batches": 0}
        claim, write = runner_module.claim_jobs, writer_module.JobWriter._write

        async def counted_claim(*args, **kwargs):  # type: ignore[no-untyped-def]
            counts["claims"] += 1
            return await claim(*args, **kwargs)

        async def counted_write(self, *args, **kwargs):  # type: ignore[no-untyped-def]
            counts["batches"] += 1
            return await write(self, *args, **kwargs)

        runner_module.claim_jobs = counted_claim  # type: ignore[assignment]
        writer_module.JobWriter._write = counted_write  # type: ignore[method-assign]
        worker = build_worker(settings, rt, WorkerOptions(concurrency=8, idle_poll_s=0.05))
        profile = cProfile.Profile()
        began = time.perf_counter()
        profile.enable()
        async with running_worker(worker):
            while True:
                async with rt.database.sessions() as session:
                    done = await session.scalar(
                        select(func.count()).where(Job.status == "succeeded")
                    )
                if done == jobs:
                    break
                await asyncio.sleep(0.02)
        profile.disable()
        elapsed = time.perf_counter() - began
    kind = url.split(":")[0]
    print(f"worker_profile ({kind}, 1 worker, concurrency 8, {jobs} no-op jobs queued first)")
    print(f"  drained in {elapsed:.2f} s: {jobs / elapsed:.0f} jobs/s (profiled)")
    print(f"  claims: {counts['claims']}, writer batches: {counts['batches']}")
    for order in ("tottime", "cumulative"):
        out = io.StringIO()
        stats = pstats.Stats(profile, stream=out).sort_stats(order)
        stats.print_stats(r"genway|sqlalchemy|asyncpg|aiosqlite|epoll", top)
        print(f"--- top {top} by {order} ---")
        print("\n".join(out.getvalue().splitlines()[6:]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--jobs", type=int, default=1000)
    parser.add_argument("--pg-url", default=None)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    url = args.pg_url or f"sqlite+aiosqlite:///{tempfile.mkdtemp()}/genway.db"
    asyncio.run(drain(url, args.jobs, args.top))


if __name__ == "__main__":
    main()

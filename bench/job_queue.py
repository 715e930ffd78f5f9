"""No-op jobs through Genway's durable queue against Celery, arq and pgqueuer, on one machine.

Every system gets the same workload: one producer in this process, ONE worker process with the
same concurrency, no-op jobs. Genway jobs (`diagnostic.sleep`, `{"seconds": 0}`) are queued
through the service layer (`genway.jobs.service.create_job`, one transaction per job, as the API
does) and run by `genway worker`, in two modes: embedded (SQLite, no Redis) and distributed
(PostgreSQL + Redis). Anchors: Celery 5.4 with a Redis broker (`--pool=threads`: one process
with N threads, the same shape as one Genway worker running N jobs), arq (one asyncio
process, `max_jobs` N, its default 0.5 s poll) and pgqueuer (PostgreSQL only, LISTEN/NOTIFY:
one process running `pgqueuer.run`, what `pgq run` does, on uvloop like it; one asyncpg
connection, `max_concurrent_tasks` N and `batch_size` N/2, the largest it accepts; one
`Queries.enqueue` per job, in a database of its own, `bench_pgqueuer` on the --pg-url server,
created if missing, its schema replaced and pgqueuer's installed).

Two cases, each split over interleaved rounds (A B C ..., then ... C B A) so that load from anything
else on the machine falls on every system alike:
  burst:   enqueue the jobs as fast as the producer can while the worker drains;
           jobs/s = jobs / (first enqueue -> last finished), summed over rounds.
  trickle: enqueue at a steady rate the worker easily keeps up with;
           dispatch latency = enqueue -> start (goal for Genway distributed: p50 <= 10 ms).
Genway's times are the jobs' own `created_at`/`started_at`/`finished_at` columns; the anchors'
are a timestamp passed in the task arguments (pgqueuer: its payload) and two taken inside the
task, pushed onto a Redis list (the same sink for all three). "after enqueue" is
the part of the dispatch latency after the enqueue call returned (for Genway: after the commit).

Run: .venv/bin/python bench/job_queue.py [--jobs 600] [--trickle-jobs 80] [--concurrency 8]
Needs PostgreSQL (--pg-url; the database is created if missing and its schema is replaced) and
Redis (--redis-url, db 5 by default). Prints Genway's throughput ratio to each anchor; the goal
is distributed / Celery >= 1, and distributed / pgqueuer is printed beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Protocol

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.append(str(Path(__file__).resolve().parent.parent))  # bench.anchors, like the workers

import redis
from common import GENWAY, ROOT, reset_postgres, worker_process
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from genway.db import Database
from genway.jobs.models import Job
from genway.jobs.schemas import JobCreate
from genway.jobs.service import Submitter, create_job
from genway.jobs.states import TERMINAL, JobStatus
from genway.migrate import migrate
from genway.orgs.models import Tier
from genway.orgs.service import create_organization, create_user
from genway.worker.registry import load_executors

if TYPE_CHECKING:
    from pgqueuer.models import Job

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/genway_bench"
DEFAULT_REDIS = "redis://127.0.0.1:6379/5"
WARMUP_JOBS = 20
DONE_TIMEOUT_S = 90.0
NOOP = JobCreate(kind="diagnostic.sleep", input={"seconds": 0})
# A long lease, so the worker's lease heartbeat (every lease/3) never fires during the run:
# `Worker._heartbeat` cancels jobs claimed while its renew query is in flight, and such a job
# can stay `running` for ever (see bench/RESULTS.md). The heartbeat itself costs one UPDATE per
# lease/3, so this does not change the throughput measured.
GENWAY_LEASE_S = "3600"
PGQ_DATABASE = "bench_pgqueuer"
PGQ_ENTRYPOINT = "bench_noop"
PGQ_DONE_KEY = "bench:pgqueuer:done"


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    if q == 0.5:
        return statistics.median(ordered)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


@dataclass
class Case:
    """One batch of jobs; per job (epoch seconds): stamped before the enqueue call, enqueue call
    returned, started, finished."""

    sent: list[float]
    queued: list[float]
    started: list[float]
    finished: list[float]
    enqueue_s: float

    @property
    def span_s(self) -> float:
        return max(self.finished) - min(self.sent)


@dataclass
class Totals:
    """The cases of one system, merged over rounds."""

    cases: list[Case] = field(default_factory=list)

    @property
    def jobs(self) -> int:
        return sum(len(case.sent) for case in self.cases)

    @property
    def jobs_per_s(self) -> float:
        return self.jobs / sum(case.span_s for case in self.cases)

    @property
    def enqueue_per_s(self) -> float:
        return self.jobs / sum(case.enqueue_s for case in self.cases)

    def dispatch_ms(self, q: float) -> float:
        return percentile(
            [(s - e) * 1000 for c in self.cases for e, s in zip(c.sent, c.started, strict=True)],
            q,
        )

    def after_enqueue_ms(self, q: float) -> float:
        return percentile(
            [(s - e) * 1000 for c in self.cases for e, s in zip(c.queued, c.started, strict=True)],
            q,
        )


class Target(Protocol):
    name: str

    async def run(self, count: int, rate: float | None, label: str) -> Case: ...


@dataclass
class Plan:
    jobs: int
    trickle_jobs: int
    trickle_rate: float
    concurrency: int
    rounds: int


class Unavailable(Exception):
    """An anchor that cannot run in this environment (reported; the others still run)."""


def paced(count: int, rate: float | None) -> Iterator[float]:
    """Before each of `count` sends, how long to sleep so that they go out at `rate` per second
    (all at once when `rate` is None)."""
    began = time.perf_counter()
    for i in range(count):
        yield 0.0 if rate is None else max(0.0, began + i / rate - time.perf_counter())


# --- Genway ------------------------------------------------------------------------------------


@dataclass
class GenwayTarget:
    name: str
    database: Database
    submitter: Submitter

    async def enqueue(self) -> int:
        """One job, one transaction: what the API does for a submission."""
        async with self.database.transaction() as session:
            job, _created = await create_job(session, self.submitter, NOOP, max_input_bytes=1 << 20)
            return job.id

    async def run(self, count: int, rate: float | None, label: str) -> Case:
        ids, queued = [], []
        began = time.perf_counter()
        for pause in paced(count, rate):
            if pause:
                await asyncio.sleep(pause)
            ids.append(await self.enqueue())
            queued.append(time.time())
        enqueue_s = time.perf_counter() - began
        assert ids == list(range(ids[0], ids[-1] + 1)), "job ids are not consecutive"
        jobs = Job.__table__
        in_batch = jobs.c.id.between(ids[0], ids[-1])
        deadline = time.monotonic() + DONE_TIMEOUT_S
        while True:
            async with self.database.sessions() as session:
                done = await session.scalar(
                    select(func.count()).where(in_batch, jobs.c.status.in_(list(TERMINAL)))
                )
            if done == count:
                break
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: only {done}/{count} jobs finished")
            await asyncio.sleep(0.05)
        async with self.database.sessions() as session:
            rows = (
                await session.execute(
                    select(jobs.c.status, jobs.c.created_at, jobs.c.started_at, jobs.c.finished_at)
                    .where(in_batch)
                    .order_by(jobs.c.id)
                )
            ).all()
        failed = [row.status for row in rows if row.status != JobStatus.SUCCEEDED]
        if failed:
            raise RuntimeError(f"{label}: {len(failed)} jobs did not succeed: {failed[:3]}")
        return Case(
            [row.created_at.timestamp() for row in rows],
            queued,
            [row.started_at.timestamp() for row in rows],
            [row.finished_at.timestamp() for row in rows],
            enqueue_s,
        )


async def genway_target(
    stack: contextlib.AsyncExitStack,
    name: str,
    plan: Plan,
    database_url: str | None,
    redis_url: str | None,
) -> GenwayTarget:
    load_executors()
    data_dir = stack.enter_context(tempfile.TemporaryDirectory())
    url = database_url or f"sqlite+aiosqlite:///{data_dir}/genway.db"
    if url.startswith("postgresql"):
        await reset_postgres(url)
    await migrate(url)
    database = Database(url)
    stack.push_async_callback(database.dispose)
    async with database.sessions() as session:
        owner = await create_user(session, "bench@bench.io")
        # enterprise: no per-organization cap on running jobs (free allows 1)
        org = await create_organization(session, "bench", owner, tier=Tier.ENTERPRISE)
        await session.commit()
        submitter = Submitter(org.id, owner.id, None)
    env = {
        **os.environ,
        "GENWAY_DATA_DIR": data_dir,
        "GENWAY_DATABASE_URL": url,
        "GENWAY_LOG_LEVEL": "WARNING",
        "GENWAY_LEASE_S": GENWAY_LEASE_S,
    }
    env.pop("GENWAY_REDIS_URL", None)
    if redis_url:
        env["GENWAY_REDIS_URL"] = redis_url
    worker = [GENWAY, "worker", "--concurrency", str(plan.concurrency)]
    stack.enter_context(worker_process(worker, env, Path(data_dir) / "worker.log"))
    target = GenwayTarget(name, database, submitter)
    await target.run(WARMUP_JOBS, None, f"{name} warm-up")
    return target


# --- anchors -----------------------------------------------------------------------------------


def clean_redis(client: redis.Redis) -> None:
    for pattern in ("bench:*", "bench-celery*", "_kombu.binding.*", "unacked*", "arq:*"):
        keys = list(client.scan_iter(match=pattern, count=1000))
        if keys:
            client.delete(*keys)


@dataclass
class AnchorTarget:
    name: str
    client: redis.Redis
    done_key: str
    send: Callable[[int, float], Awaitable[None]]

    async def run(self, count: int, rate: float | None, label: str) -> Case:
        self.client.delete(self.done_key)
        queued = []
        began = time.perf_counter()
        for seq, pause in enumerate(paced(count, rate)):
            if pause:
                await asyncio.sleep(pause)
            await self.send(seq, time.time())
            queued.append(time.time())
        enqueue_s = time.perf_counter() - began
        deadline = time.monotonic() + DONE_TIMEOUT_S
        while (done := self.client.llen(self.done_key)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"{label}: only {done}/{count} jobs finished")
            await asyncio.sleep(0.05)
        records = sorted(json.loads(raw) for raw in self.client.lrange(self.done_key, 0, -1))
        assert [r[0] for r in records] == list(range(count)), f"{label}: lost or repeated jobs"
        return Case(
            [r[1] for r in records], queued, [r[2] for r in records], [r[3] for r in records],
            enqueue_s,
        )  # fmt: skip


async def anchor_target(
    stack: contextlib.AsyncExitStack,
    name: str,
    redis_url: str,
    worker: list[str],
    done_key: str,
    send: Callable[[int, float], Awaitable[None]],
    plan: Plan,
) -> AnchorTarget:
    client = redis.Redis.from_url(redis_url)
    stack.callback(client.close)
    clean_redis(client)
    stack.callback(clean_redis, client)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")])),
        "BENCH_REDIS_URL": redis_url,
        "BENCH_CONCURRENCY": str(plan.concurrency),
    }
    log_dir = stack.enter_context(tempfile.TemporaryDirectory())
    stack.enter_context(worker_process(worker, env, Path(log_dir) / "worker.log"))
    target = AnchorTarget(name, client, done_key, send)
    await target.run(WARMUP_JOBS, None, f"{name} warm-up")
    return target


async def celery_target(
    stack: contextlib.AsyncExitStack, plan: Plan, redis_url: str, pool: str
) -> AnchorTarget:
    os.environ["BENCH_REDIS_URL"] = redis_url
    import kombu
    import kombu.exceptions
    from bench.anchors import celery_app

    try:  # kombu >= 5.6 refuses redis-py 5.x (which arq 0.28 and celery 5.4 require) at runtime
        with celery_app.app.connection_for_write() as connection:
            connection.ensure_connection(max_retries=1)
    except kombu.exceptions.VersionMismatch as exc:
        why = f"celery skipped: {exc} (kombu {kombu.__version__}); use kombu<5.5"
        raise Unavailable(why) from exc
    stack.callback(celery_app.app.close)
    celery = str(Path(sys.executable).with_name("celery"))
    worker = [
        celery, "-A", "bench.anchors.celery_app", "worker", f"--pool={pool}",
        f"--concurrency={plan.concurrency}", "--loglevel=WARNING",
        "--without-gossip", "--without-mingle", "--without-heartbeat",
    ]  # fmt: skip
    task = celery_app.noop

    async def send(seq: int, sent: float) -> None:
        task.apply_async(args=(seq, sent))  # a blocking LPUSH; nothing else runs meanwhile

    name = f"celery (Redis, {pool})"
    return await anchor_target(stack, name, redis_url, worker, celery_app.DONE_KEY, send, plan)


async def arq_target(stack: contextlib.AsyncExitStack, plan: Plan, redis_url: str) -> AnchorTarget:
    os.environ["BENCH_REDIS_URL"] = redis_url
    os.environ["BENCH_CONCURRENCY"] = str(plan.concurrency)
    from arq import create_pool
    from bench.anchors import arq_worker

    pool = await create_pool(arq_worker.WorkerSettings.redis_settings)
    stack.push_async_callback(pool.aclose)

    async def send(seq: int, sent: float) -> None:
        await pool.enqueue_job("noop", seq, sent, _queue_name=arq_worker.QUEUE)

    worker = [sys.executable, "-m", "bench.anchors.arq_worker"]
    name = f"arq (poll {arq_worker.WorkerSettings.poll_delay:g} s)"
    return await anchor_target(stack, name, redis_url, worker, arq_worker.DONE_KEY, send, plan)


@contextlib.asynccontextmanager
async def pgqueuer_worker() -> AsyncIterator[object]:
    """The pgqueuer anchor's worker factory, for `pgqueuer.run` (BENCH_PGQUEUER_DSN,
    BENCH_REDIS_URL, BENCH_CONCURRENCY)."""
    import asyncpg
    import redis.asyncio
    from pgqueuer import PgQueuer
    from pgqueuer.db import AsyncpgDriver

    connection = await asyncpg.connect(os.environ["BENCH_PGQUEUER_DSN"])
    sink = redis.asyncio.Redis.from_url(os.environ["BENCH_REDIS_URL"])
    pgq = PgQueuer(AsyncpgDriver(connection))
    _batch, cap = pgqueuer_limits(int(os.environ["BENCH_CONCURRENCY"]))

    @pgq.entrypoint(PGQ_ENTRYPOINT, concurrency_limit=0 if cap else 1, accepts_context=False)
    async def noop(job: Job) -> None:
        started = time.time()
        seq, sent = json.loads(job.payload or b"null")
        await sink.rpush(PGQ_DONE_KEY, json.dumps([seq, sent, started, time.time()]))

    try:
        yield pgq
    finally:
        await sink.aclose()
        await connection.close()


def pgqueuer_limits(concurrency: int) -> tuple[int, int | None]:
    """pgqueuer's batch size and `max_concurrent_tasks` for a worker running `concurrency` jobs.

    `max_concurrent_tasks` must be at least twice the batch size, so a concurrency of 1 has no
    cap there and the entrypoint's own limit (1) does it instead."""
    batch = max(1, concurrency // 2)
    return batch, (concurrency if concurrency >= 2 * batch else None)


def run_pgqueuer_worker(concurrency: int) -> None:
    """The pgqueuer anchor's worker process: `pgqueuer.run`, which is what `pgq run` does (the
    CLI of pgqueuer 1.6.0 fails with typer 0.29.2: `--log-level` reaches the logger as a str)."""
    import pgqueuer
    import uvloop

    batch, cap = pgqueuer_limits(concurrency)
    uvloop.run(pgqueuer.run(pgqueuer_worker, batch_size=batch, max_concurrent_tasks=cap))


async def pgqueuer_target(
    stack: contextlib.AsyncExitStack, plan: Plan, pg_url: str, redis_url: str
) -> AnchorTarget:
    try:
        import asyncpg
        from pgqueuer.db import AsyncpgDriver
        from pgqueuer.queries import Queries
    except ImportError as exc:
        raise Unavailable("pgqueuer skipped: not installed (pip install -e '.[bench]')") from exc
    url = make_url(pg_url).set(database=PGQ_DATABASE)
    await reset_postgres(url.render_as_string(hide_password=False))
    dsn = url.set(drivername="postgresql").render_as_string(hide_password=False)
    connection = await asyncpg.connect(dsn)
    stack.push_async_callback(connection.close)
    queries = Queries(AsyncpgDriver(connection))
    await queries.install()
    os.environ["BENCH_PGQUEUER_DSN"] = dsn
    worker = [sys.executable, __file__, "--pgqueuer-worker", "--concurrency", str(plan.concurrency)]

    async def send(seq: int, sent: float) -> None:
        await queries.enqueue(PGQ_ENTRYPOINT, json.dumps([seq, sent]).encode())

    name = f"pgqueuer (PG, batch {pgqueuer_limits(plan.concurrency)[0]})"
    return await anchor_target(stack, name, redis_url, worker, PGQ_DONE_KEY, send, plan)


# --- the run -----------------------------------------------------------------------------------


async def measure(
    targets: list[Target], count: int, rate: float | None, rounds: int, case: str
) -> dict[str, Totals]:
    totals = {target.name: Totals() for target in targets}
    for r in range(rounds):
        order = targets if r % 2 == 0 else targets[::-1]
        share = count // rounds + (1 if r < count % rounds else 0)
        for target in order:
            result = await target.run(share, rate, f"{target.name} {case} {r + 1}")
            totals[target.name].cases.append(result)
            print(
                f"  [{case} round {r + 1}: {target.name}: {len(result.sent) / result.span_s:.0f}"
                " jobs/s]",
                file=sys.stderr,
            )
    return totals


def report(
    plan: Plan, names: list[str], burst: dict[str, Totals], trickle: dict[str, Totals] | None
) -> None:
    print(
        f"queue: no-op jobs, 1 producer, 1 worker process x concurrency {plan.concurrency}; "
        f"burst {plan.jobs} jobs per system"
        + (f", trickle {plan.trickle_jobs} at {plan.trickle_rate:g}/s" if trickle else "")
        + f"; {plan.rounds} interleaved rounds"
    )
    print(
        f"  {'system':<33}{'jobs/s':>8}{'enqueue/s':>11}{'burst wait':>12}"
        f"{'dispatch p50':>14}{'p99':>10}{'after enqueue p50':>19}"
    )
    for name in names:
        b = burst[name]
        line = f"  {name:<33}{b.jobs_per_s:8.0f}{b.enqueue_per_s:11.0f}{b.dispatch_ms(0.5):9.0f} ms"
        if trickle:
            t = trickle[name]
            line += (
                f"{t.dispatch_ms(0.5):11.1f} ms{t.dispatch_ms(0.99):7.1f} ms"
                f"{t.after_enqueue_ms(0.5):16.1f} ms"
            )
        print(line)
    print("  jobs/s, enqueue/s, burst wait (p50 enqueue -> start, mostly queueing): burst case")
    print("  dispatch and after enqueue (p50 enqueue returned -> start): trickle case")
    genways = [n for n in names if n.startswith("genway")]
    anchors = [n for n in names if not n.startswith("genway")]
    for g in genways:
        for a in anchors:
            line = f"  {g} / {a}: throughput {burst[g].jobs_per_s / burst[a].jobs_per_s:5.2f}"
            if trickle:
                ratio = trickle[g].dispatch_ms(0.5) / trickle[a].dispatch_ms(0.5)
                line += f", dispatch p50 {ratio:6.2f}"
            print(line)
    distributed = next((n for n in genways if "distributed" in n), None)
    celery = next((n for n in anchors if n.startswith("celery")), None)
    if distributed and celery:
        ratio = burst[distributed].jobs_per_s / burst[celery].jobs_per_s
        print(f"  goal: distributed throughput / celery >= 1.00: {ratio:.2f}")
    pgqueuer = next((n for n in anchors if n.startswith("pgqueuer")), None)
    if distributed and pgqueuer:
        ratio = burst[distributed].jobs_per_s / burst[pgqueuer].jobs_per_s
        print(f"  distributed throughput / pgqueuer (both on PostgreSQL): {ratio:.2f}")
    if distributed and trickle:
        p50 = trickle[distributed].dispatch_ms(0.5)
        print(f"  goal: distributed dispatch p50 <= 10 ms: {p50:.1f} ms")


async def run(args: argparse.Namespace) -> None:
    plan = Plan(args.jobs, args.trickle_jobs, args.trickle_rate, args.concurrency, args.rounds)
    builders: dict[str, Callable[[contextlib.AsyncExitStack], Awaitable[Target]]] = {
        "sqlite": lambda s: genway_target(s, "genway embedded (SQLite)", plan, None, None),
        "distributed": lambda s: genway_target(
            s, "genway distributed (PG + Redis)", plan, args.pg_url, args.redis_url
        ),
        "celery": lambda s: celery_target(s, plan, args.redis_url, args.celery_pool),
        "arq": lambda s: arq_target(s, plan, args.redis_url),
        "pgqueuer": lambda s: pgqueuer_target(s, plan, args.pg_url, args.redis_url),
    }
    skipped = []
    async with contextlib.AsyncExitStack() as stack:
        targets: list[Target] = []
        for key in [k.strip() for k in args.systems.split(",") if k.strip()]:
            try:
                targets.append(await builders[key](stack))
            except Unavailable as exc:
                skipped.append(str(exc))
        began = time.perf_counter()
        burst = await measure(targets, plan.jobs, None, plan.rounds, "burst")
        trickle = None
        if plan.trickle_jobs:
            trickle = await measure(
                targets, plan.trickle_jobs, plan.trickle_rate, plan.rounds, "trickle"
            )
        print(f"  [measured in {time.perf_counter() - began:.0f} s]", file=sys.stderr)
    report(plan, [t.name for t in targets], burst, trickle)
    for note in skipped:
        print(f"  {note}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=600, help="burst jobs per system")
    parser.add_argument("--trickle-jobs", type=int, default=80, help="0 skips the trickle case")
    parser.add_argument("--trickle-rate", type=float, default=10.0, help="jobs/s when trickling")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs at once per worker")
    parser.add_argument("--rounds", type=int, default=2, help="interleaved rounds per case")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--celery-pool", default="threads", choices=["threads", "prefork", "solo"])
    parser.add_argument(
        "--systems", default="sqlite,distributed,celery,arq,pgqueuer",
        help="comma-separated subset of sqlite,distributed,celery,arq,pgqueuer",
    )  # fmt: skip
    parser.add_argument("--pgqueuer-worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.pgqueuer_worker:
        run_pgqueuer_worker(args.concurrency)
        return
    asyncio.run(run(args))


if __name__ == "__main__":
    main()

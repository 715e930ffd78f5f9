"""arq anchor for bench/job_queue.py: one no-op job function.

The job records (seq, sent, started, finished) wall-clock timestamps on a Redis list, like the
Celery anchor. `poll_delay` is arq's default (0.5 s) unless BENCH_ARQ_POLL_DELAY is set. Worker:

    PYTHONPATH=. .venv/bin/python -m bench.anchors.arq_worker
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, ClassVar

from arq.connections import RedisSettings
from arq.worker import func

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
DONE_KEY = "bench:arq:done"
QUEUE = "bench:arq:queue"


async def noop(ctx: dict[str, Any], seq: int, sent: float) -> None:
    started = time.time()
    await ctx["redis"].rpush(DONE_KEY, json.dumps([seq, sent, started, time.time()]))


class WorkerSettings:
    functions: ClassVar[list[Any]] = [func(noop, name="noop")]
    redis_settings = RedisSettings.from_dsn(REDIS_URL)
    queue_name = QUEUE
    max_jobs = int(os.environ.get("BENCH_CONCURRENCY", "8"))
    poll_delay = float(os.environ.get("BENCH_ARQ_POLL_DELAY", "0.5"))
    keep_result = 60
    log_results = False


if __name__ == "__main__":  # logging left unconfigured (warnings only), like the other workers
    from arq import run_worker

    run_worker(WorkerSettings)  # type: ignore[arg-type]

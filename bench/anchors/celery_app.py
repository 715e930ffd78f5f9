"""Celery anchor for bench/job_queue.py: one no-op task on a Redis broker.

The task records (seq, sent, started, finished) wall-clock timestamps on a Redis list, so the
benchmark can measure dispatch latency and completion without a result backend. Worker:

    PYTHONPATH=. .venv/bin/celery -A bench.anchors.celery_app worker --pool=threads -c 8
"""

from __future__ import annotations

import json
import os
import time

import redis
from celery import Celery

REDIS_URL = os.environ.get("BENCH_REDIS_URL", "redis://127.0.0.1:6379/5")
DONE_KEY = "bench:celery:done"
QUEUE = "bench-celery"

app = Celery("bench", broker=REDIS_URL)
app.conf.update(
    task_default_queue=QUEUE,
    task_ignore_result=True,  # completion is recorded by the task itself (one RPUSH)
    worker_hijack_root_logger=False,
    broker_connection_retry_on_startup=True,
)
_redis = redis.Redis.from_url(REDIS_URL)


@app.task(name="bench.noop")
def noop(seq: int, sent: float) -> None:
    started = time.time()
    _redis.rpush(DONE_KEY, json.dumps([seq, sent, started, time.time()]))

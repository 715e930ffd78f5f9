"""`genway worker`: a standalone worker process with graceful shutdown on SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import gc
import signal

import structlog

from genway.config import Settings
from genway.observability.logging import configure_logging
from genway.worker.service import build_worker, runtime

log = structlog.get_logger("genway.worker")


async def serve_worker(
    settings: Settings, concurrency: int | None, kinds: list[str] | None
) -> None:
    async with runtime(settings) as rt:
        worker = build_worker(settings, rt, settings.worker_options(concurrency, kinds))
        loop = asyncio.get_running_loop()
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, worker.stop)
        gc.collect()
        gc.freeze()  # full collections then skip the start-up heap (see `create_app`)
        await worker.run()


def run_worker_process(
    settings: Settings, concurrency: int | None, kinds: list[str] | None
) -> None:
    configure_logging(settings.log_level, settings.log_json)
    settings.ensure_data_dir()
    asyncio.run(serve_worker(settings, concurrency, kinds))

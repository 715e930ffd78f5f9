"""Assembling the pieces a worker process needs (used by `genway serve` and `genway worker`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from genway.config import Settings
from genway.db import Database, Publisher
from genway.engines.comfyui.runtime import ComfyUIEngine, comfyui_runtime
from genway.queue.wakeup import Wakeup
from genway.ratelimit.tiers import configure_tiers
from genway.realtime.broadcast import Broadcaster, create_broadcaster
from genway.worker.registry import load_executors
from genway.worker.runner import Worker, WorkerOptions


@dataclass
class Runtime:
    """Database, event fan-out and wake-ups: shared by the API and the embedded worker."""

    database: Database
    broadcaster: Broadcaster
    wakeup: Wakeup
    comfyui: ComfyUIEngine | None = None


@contextlib.asynccontextmanager
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    load_executors(settings.executor_modules)
    configure_tiers(settings.tier_limits)
    database = Database(settings.resolved_database_url)
    broadcaster = create_broadcaster(settings.redis_url, settings.events_channel)
    wakeup = Wakeup(settings.resolved_database_url)
    await broadcaster.start()
    await wakeup.start()
    database.publisher = _publisher(broadcaster, wakeup)
    try:
        async with comfyui_runtime(settings, database) as comfyui:
            yield Runtime(database, broadcaster, wakeup, comfyui)
    finally:
        await wakeup.stop()
        await broadcaster.stop()
        await database.dispose()


def _publisher(broadcaster: Broadcaster, wakeup: Wakeup) -> Publisher:
    def publish(events: list[dict[str, Any]], wake: bool) -> None:
        broadcaster.publish(events)
        if wake:
            wakeup.notify()

    return publish


def build_worker(settings: Settings, rt: Runtime, options: WorkerOptions | None = None) -> Worker:
    return Worker(
        rt.database,
        rt.broadcaster,
        rt.wakeup,
        settings.data_dir,
        options or settings.worker_options(),
        settings,
    )

"""Assembling the pieces a worker process needs (used by `genway serve` and `genway worker`)."""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

from genway.config import Settings
from genway.db import Committed, Database, Publisher
from genway.engines.comfyui.runtime import ComfyUIEngine, comfyui_runtime
from genway.notifications.runtime import notifications_runtime
from genway.queue.wakeup import Wakeup
from genway.ratelimit.tiers import configure_tiers
from genway.ratelimit.usage_buffer import UsageBuffer, metering
from genway.realtime.broadcast import Broadcaster, create_broadcaster
from genway.webhooks.outbox import Outbox
from genway.webhooks.sender import WebhookSender
from genway.webhooks.service import endpoint_disabled
from genway.webhooks.targets import configure_targets
from genway.worker.registry import load_executors
from genway.worker.runner import Worker, WorkerOptions


@dataclass
class Runtime:
    """Database, event fan-out and wake-ups: shared by the API and the embedded worker."""

    database: Database
    broadcaster: Broadcaster
    wakeup: Wakeup
    usage: UsageBuffer
    comfyui: ComfyUIEngine | None = None
    webhooks: WebhookSender | None = None  # sends deliveries beside a worker's jobs


@contextlib.asynccontextmanager
async def runtime(settings: Settings) -> AsyncIterator[Runtime]:
    load_executors(settings.executor_modules)
    configure_tiers(settings.tier_limits)
    configure_targets(settings.webhook_policy)
    database = Database(settings.resolved_database_url)
    broadcaster = create_broadcaster(settings.redis_url, settings.events_channel)
    wakeup = Wakeup(settings.resolved_database_url)
    usage = UsageBuffer(database)
    webhooks = WebhookSender(database, settings, on_endpoint_disabled=endpoint_disabled)
    Outbox(database).install()
    await broadcaster.start()
    await wakeup.start()
    database.publisher = _publisher(broadcaster, wakeup, usage, webhooks)
    broadcaster.on_auth_change = database.auth_changed_elsewhere
    try:
        async with (
            metering(usage, settings.usage_flush_interval_s),
            comfyui_runtime(settings, database) as comfyui,
            notifications_runtime(settings, database),
        ):
            yield Runtime(database, broadcaster, wakeup, usage, comfyui, webhooks)
    finally:
        await wakeup.stop()
        await broadcaster.stop()
        await database.dispose()


def _publisher(
    broadcaster: Broadcaster, wakeup: Wakeup, usage: UsageBuffer, webhooks: WebhookSender
) -> Publisher:
    def publish(committed: Committed) -> None:
        broadcaster.publish(committed.events)
        if committed.auth_changed:
            broadcaster.publish_auth_change()
        if committed.wake:
            wakeup.notify()
        usage.add(committed.usage)
        if committed.deliveries:
            webhooks.wake()

    return publish


def build_worker(settings: Settings, rt: Runtime, options: WorkerOptions | None = None) -> Worker:
    return Worker(
        rt.database,
        rt.broadcaster,
        rt.wakeup,
        settings.data_dir,
        options or settings.worker_options(),
        settings,
        webhooks=rt.webhooks,
    )

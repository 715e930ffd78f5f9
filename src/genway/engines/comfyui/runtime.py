"""The ComfyUI engine of one process: the backend pool and its health loop, the txt2img
template, cached `/object_info`, and the upload cleanup loop.

`comfyui_runtime` runs wherever `genway.worker.service.runtime` runs (the API process and every
worker process). The API reaches the engine through `app.state.comfyui`; executors through
`active_engine()`, a context variable: the worker's tasks are created inside the runtime block and
inherit it, so several apps in one process (as in the tests) each use their own pool.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Collection, Coroutine
from contextvars import ContextVar
from typing import Any

import structlog
from pydantic import ValidationError
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.db import Database
from genway.engines.comfyui.admission import admit
from genway.engines.comfyui.client import ComfyUIClient
from genway.engines.comfyui.cost import admit_cost
from genway.engines.comfyui.errors import ComfyUIError
from genway.engines.comfyui.feed import PromptFeeds
from genway.engines.comfyui.job_inputs import WORKFLOW_KIND, GenerateInput
from genway.engines.comfyui.node_policy import Catalogue, NodePolicy, model_files_of
from genway.engines.comfyui.pool import (
    Backend,
    BackendHealthLoop,
    BackendPool,
    BackendSnapshot,
    backend_id,
)
from genway.engines.comfyui.workflows import Workflow, load_txt2img_template, render_txt2img
from genway.queue.models import PauseScope, queue_pauses
from genway.storage.blobs import BlobStore
from genway.storage.cleanup import UploadCleaner
from genway.worker.registry import validate_job_input

log = structlog.get_logger("genway.engines.comfyui")

_ENGINE: ContextVar[ComfyUIEngine | None] = ContextVar("genway_comfyui_engine", default=None)
STATS_TTL_S = 5.0
BACKGROUND_GRACE_S = 10.0


class _Cached:
    """One value fetched from some healthy backend, kept for `ttl_s`; stale beats nothing."""

    def __init__(self, ttl_s: float) -> None:
        self.ttl_s = ttl_s
        self.value: Any = None
        self.fetched_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self, fetch: Callable[[], Awaitable[Any]]) -> Any:
        if self.value is not None and time.monotonic() - self.fetched_at < self.ttl_s:
            return self.value
        async with self._lock:
            if self.value is None or time.monotonic() - self.fetched_at >= self.ttl_s:
                fresh = await fetch()
                if fresh is not None:
                    self.value, self.fetched_at = fresh, time.monotonic()
        return self.value


def build_pool(settings: Settings) -> BackendPool:
    def client(url: str) -> ComfyUIClient:
        return ComfyUIClient(
            url,
            timeout=settings.comfyui_timeout_s,
            connect_timeout=min(5.0, settings.comfyui_timeout_s),
            poll_interval=settings.comfyui_poll_interval_s,
        )

    return BackendPool(
        settings.comfyui_urls,
        client_factory=client,
        check_timeout=min(5.0, settings.comfyui_timeout_s),
        base_backoff=min(1.0, settings.comfyui_backoff_max_s),
        max_backoff=settings.comfyui_backoff_max_s,
    )


class ComfyUIEngine:
    def __init__(
        self,
        settings: Settings,
        database: Database,
        pool: BackendPool,
        template: Workflow,
        policy: NodePolicy | None = None,
    ) -> None:
        self.settings = settings
        self.database = database
        self.pool = pool
        self.template = template
        self.policy = policy or NodePolicy()
        self.store = BlobStore(settings.data_dir / "blobs")
        self.prompts = PromptFeeds(database)
        self.health_loop = BackendHealthLoop(pool, settings.comfyui_health_interval_s)
        self._checked = asyncio.Event()
        self._catalogues: dict[str, _Cached] = {}
        self._background: set[asyncio.Task[None]] = set()
        self._stats = _Cached(STATS_TTL_S)

    async def keep_checking(self) -> None:
        """The health loop; the first round also releases `wait_checked`."""
        while True:
            try:
                await self.health_loop.run_once()
            except Exception as exc:  # a bug in one round must not stop the checks for good
                log.error("comfyui_health_round_failed", error=str(exc))
            self._checked.set()
            await asyncio.sleep(self.health_loop.interval)

    def in_background(self, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` (cleanup after a job) without making anyone wait for it; the runtime
        waits for what is left when it stops."""
        task = asyncio.create_task(work)
        self._background.add(task)
        task.add_done_callback(self._background.discard)

    async def settle_background(self, timeout_s: float) -> None:
        if self._background:
            await asyncio.wait(set(self._background), timeout=timeout_s)

    async def wait_checked(self, timeout_s: float) -> None:
        """Until the first health round ended (so a job does not wait for nothing at startup)."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._checked.wait(), timeout_s)

    def pick(self, exclude: Collection[str] = ()) -> Backend | None:
        return self.pool.pick(exclude)

    async def paused_backend_urls(self) -> set[str]:
        """The URLs of this pool's backends a platform admin paused: read from the database
        for each prompt, so a pause holds in every worker process at once."""
        query = select(queue_pauses.c.target).where(queue_pauses.c.scope == PauseScope.BACKEND)
        async with self.database.sessions() as session:
            paused = set((await session.scalars(query)).all())
        return {url for url in self.pool.backends if backend_id(url) in paused}

    def retry_delay_s(self) -> float:
        """How long a job should wait when no backend is healthy: until the pool has checked
        again, so it starts right after a backend comes back."""
        return self.pool.next_check_in() + self.health_loop.interval

    async def _from_backend(self, call: Callable[[ComfyUIClient], Awaitable[Any]]) -> Any:
        backend = self.pool.pick()
        if backend is None:
            return None
        try:
            return await call(backend.client)
        except ComfyUIError as exc:
            log.warning("comfyui_fetch_failed", url=backend.url, error=str(exc))
            return None

    async def catalogue(self, backend: Backend | None = None) -> Catalogue | None:
        """The node classes and model files of `backend` (default: a healthy one), cached per
        backend; None when it does not answer."""
        backend = backend or self.pool.pick()
        if backend is None:
            return None
        cache = self._catalogues.setdefault(
            backend.url, _Cached(self.settings.comfyui_object_info_ttl_s)
        )
        catalogue: Catalogue | None = await cache.get(lambda: _fetch_catalogue(backend))
        return catalogue

    async def object_info(self) -> dict[str, Any] | None:
        """`/object_info` of a healthy backend (cached), or None when none answers."""
        catalogue = await self.catalogue()
        return dict(catalogue.object_info) if catalogue is not None else None

    async def admit_job_input(
        self, session: AsyncSession, org_id: int, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A `comfy.workflow` job's input, checked against the tier's cost limits and the file
        policy, with its upload inputs pinned to the organization's artifacts.
        Raises InvalidInput, WorkflowOverLimit, WorkflowRefused."""
        _spec, normalized = validate_job_input(WORKFLOW_KIND, data)
        explicit: dict[str, int] = normalized.get("inputs") or {}
        catalogue = await self.catalogue()
        await admit_cost(session, org_id, normalized["workflow"], catalogue)
        admitted = await admit(
            session, org_id, normalized["workflow"], explicit, catalogue, self.policy
        )
        return {**normalized, "inputs": {**explicit, **admitted.inputs}}

    async def admit_generate_input(
        self, session: AsyncSession, org_id: int, data: dict[str, Any]
    ) -> dict[str, Any]:
        """A `comfy.generate` job's input (unchanged), once the workflow it renders is within
        the tier's cost limits; an input that is not valid is left to the job's own checks.
        Raises WorkflowOverLimit."""
        try:
            params = GenerateInput.model_validate(data)
        except ValidationError:
            return data
        workflow = render_txt2img(params, self.template)
        await admit_cost(session, org_id, workflow, await self.catalogue())
        return data

    async def system_stats(self) -> dict[str, Any] | None:
        stats: dict[str, Any] | None = await self._stats.get(
            lambda: self._from_backend(lambda client: client.system_stats())
        )
        return stats

    def snapshot(self) -> list[BackendSnapshot]:
        return self.pool.snapshot()

    def health(self) -> dict[str, Any]:
        """For `/health`: "not_configured" without backends (`GENWAY_COMFYUI_URLS` empty), "ok"
        while at least one backend is healthy, else "degraded"."""
        backends = [backend.as_dict() for backend in self.snapshot()]
        healthy = sum(1 for backend in backends if backend["state"] == "healthy")
        if not backends:
            status = "not_configured"
        else:
            status = "ok" if healthy else "degraded"
        return {
            "status": status,
            "healthy_backends": healthy,
            "backends": backends,
        }


async def _fetch_catalogue(backend: Backend) -> Catalogue | None:
    try:
        info, models = await asyncio.gather(backend.client.object_info(), backend.client.models())
    except ComfyUIError as exc:
        log.warning("comfyui_fetch_failed", url=backend.url, error=str(exc))
        return None
    return Catalogue(info, model_files_of(models))


def active_engine() -> ComfyUIEngine:
    """The engine of the runtime this task runs in. Raises RuntimeError outside one."""
    engine = _ENGINE.get()
    if engine is None:
        raise RuntimeError("the ComfyUI engine is not running in this process")
    return engine


@contextlib.asynccontextmanager
async def comfyui_runtime(settings: Settings, database: Database) -> AsyncIterator[ComfyUIEngine]:
    """Start the pool's health loop and the upload cleanup; stop them on exit.

    Raises ValueError at once for an unusable txt2img template (a configuration error)."""
    template = load_txt2img_template(settings.comfyui_txt2img_template)
    policy = NodePolicy.load(settings.comfyui_node_policy)
    engine = ComfyUIEngine(settings, database, build_pool(settings), template, policy)
    cleaner = UploadCleaner(database, engine.store, settings.upload_ttl_s)
    tasks = [
        asyncio.create_task(engine.keep_checking(), name="comfyui-health"),
        asyncio.create_task(
            cleaner.run_forever(settings.upload_cleanup_interval_s), name="upload-cleanup"
        ),
    ]
    token = _ENGINE.set(engine)
    try:
        yield engine
    finally:
        _ENGINE.reset(token)
        await engine.settle_background(BACKGROUND_GRACE_S)
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await engine.pool.aclose()


async def check_backends(settings: Settings) -> list[BackendSnapshot]:
    """One health round over the configured backends (for `genway backends`)."""
    pool = build_pool(settings)
    try:
        await pool.run_once()
        return pool.snapshot()
    finally:
        await pool.aclose()

"""create_app(): routers, middleware, lifespan; nothing else."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from genway import __version__
from genway.admin.routes import router as admin_router
from genway.agents.legacy_routes import router as legacy_agents_router
from genway.agents.routes import alpha_router as agents_alpha_router
from genway.agents.routes import router as agents_router
from genway.auth.cache import PrincipalCache
from genway.auth.routes import router as auth_router
from genway.compat.comfyui.jobs_api import router as comfyui_jobs_router
from genway.compat.comfyui.routes import router as comfyui_compat_router
from genway.compat.comfyui.ws import router as comfyui_ws_router
from genway.config import Settings
from genway.engines.comfyui.job_inputs import GENERATE_KIND, WORKFLOW_KIND
from genway.engines.comfyui.routes import router as generate_router
from genway.errors import COMMON_ERRORS, install_error_handlers
from genway.github.intake_routes import router as github_intake_router
from genway.github.pins import WEBHOOK_PATH
from genway.github.routes import router as github_router
from genway.jobs.legacy_routes import router as legacy_jobs_router
from genway.jobs.legacy_routes import ws_router as jobs_ws_router
from genway.jobs.routes import router as jobs_router
from genway.keys.routes import router as keys_router
from genway.kit.body_limit import BodyLimitMiddleware
from genway.kit.openapi import install_openapi
from genway.notifications.routes import router as notifications_router
from genway.observability.logging import configure_logging
from genway.observability.metrics import Metrics
from genway.observability.middleware import RequestContextMiddleware
from genway.observability.routes import router as observability_router
from genway.orgevents.routes import router as org_events_router
from genway.orgs.invitation_routes import router as invitations_router
from genway.orgs.routes import router as orgs_router
from genway.projects.legacy_routes import seed002_router as legacy_projects_router
from genway.projects.legacy_routes import seed004_router as api_projects_router
from genway.projects.routes import router as projects_router
from genway.promode.routes import router as promode_router
from genway.queue.routes import router as queue_router
from genway.ratelimit.limiter import RateLimiter
from genway.ratelimit.middleware import RateLimitHeadersMiddleware
from genway.ratelimit.routes import router as usage_router
from genway.realtime.guard import StreamRegistry
from genway.storage.routes import router as storage_router
from genway.validation.routes import legacy_router as legacy_validation_router
from genway.validation.routes import router as validation_router
from genway.webhooks.routes import router as webhooks_router
from genway.worker.runner import running_worker
from genway.worker.service import build_worker, runtime


def create_app(settings: Settings | None = None, *, freeze_heap: bool = False) -> FastAPI:
    """The application. `freeze_heap` (for a server process, `genway serve`): once started,
    move every object made so far out of the garbage collector's reach (`gc.freeze()`), so
    full collections scan only what requests allocate and pause for milliseconds instead of
    a quarter of a second."""
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_json)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        settings.ensure_data_dir()
        _ = settings.resolved_secret_key
        async with runtime(settings) as rt:
            app.state.db = rt.database
            app.state.broadcaster = rt.broadcaster
            app.state.wakeup = rt.wakeup
            app.state.comfyui = rt.comfyui
            app.state.job_admission = (
                {
                    WORKFLOW_KIND: rt.comfyui.admit_job_input,
                    GENERATE_KIND: rt.comfyui.admit_generate_input,
                }
                if rt.comfyui is not None
                else {}
            )
            app.state.limiter = RateLimiter.from_settings(settings, metrics.ratelimit_errors)
            app.state.principal_cache = PrincipalCache.for_runtime(
                rt.database, rt.broadcaster, settings
            )
            app.state.streams = StreamRegistry.for_runtime(
                rt.database, rt.broadcaster, settings, app.state.principal_cache
            )
            app.state.request_meter = rt.usage
            if not settings.embedded_worker:
                _freeze_startup_heap(freeze_heap)
                yield
                return
            worker = build_worker(settings, rt)
            app.state.worker = worker
            async with running_worker(worker):
                _freeze_startup_heap(freeze_heap)
                yield

    app = FastAPI(
        title="Genway",
        version=__version__,
        description="Multi-tenant API service for long AI generation jobs.",
        lifespan=lifespan,
        responses=COMMON_ERRORS,
    )
    app.state.settings = settings
    app.state.metrics = metrics
    install_error_handlers(app)
    install_openapi(app, password_min_length=settings.password_min_length)
    app.add_middleware(
        BodyLimitMiddleware,
        limit=settings.max_body_bytes,
        path_limits={WEBHOOK_PATH: settings.github_webhook_max_bytes},
    )
    app.add_middleware(RateLimitHeadersMiddleware)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    # FastAPI matches a request against the routes in order (twice: to pick and to handle), so
    # the routers clients call all the time come first: job reads and submissions, then
    # ComfyUI's API (stock clients poll `/history` and fetch `/view` for every image).
    app.include_router(observability_router)
    app.include_router(jobs_router)
    app.include_router(comfyui_compat_router)
    app.include_router(comfyui_ws_router)
    app.include_router(comfyui_jobs_router)
    for router in (
        auth_router,
        orgs_router,
        invitations_router,
        keys_router,
        legacy_jobs_router,
        jobs_ws_router,
        usage_router,
        admin_router,
        projects_router,
        legacy_projects_router,
        api_projects_router,
        agents_router,
        agents_alpha_router,
        legacy_agents_router,
        promode_router,
        storage_router,
        generate_router,
        notifications_router,
        webhooks_router,
        org_events_router,
        queue_router,
        github_router,
        github_intake_router,
        validation_router,
        legacy_validation_router,
    ):
        app.include_router(router)
    # Current ComfyUI serves its API under /api as well.
    app.include_router(comfyui_compat_router, prefix="/api", include_in_schema=False)
    app.include_router(comfyui_jobs_router, prefix="/api", include_in_schema=False)
    app.include_router(comfyui_ws_router, prefix="/api")
    return app


def _freeze_startup_heap(freeze: bool) -> None:
    if freeze:
        gc.collect()
        gc.freeze()

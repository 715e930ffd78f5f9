"""`/health` (process, database and engines) and `/metrics` (Prometheus)."""

from __future__ import annotations

import hmac
import time
from typing import Any

import structlog
from fastapi import APIRouter, Request, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from sqlalchemy import text

from genway import __version__
from genway.admin.service import collect_stats
from genway.db import Database
from genway.engines.llm.runtime import llm_health
from genway.errors import Unauthorized

router = APIRouter(tags=["health"])
log = structlog.get_logger("genway.health")


async def check_database(database: Database) -> dict[str, Any]:
    started = time.perf_counter()
    try:
        async with database.engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
    except Exception as exc:  # any driver error means the database is unusable
        return {"status": "down", "error": type(exc).__name__}
    return {"status": "ok", "latency_ms": round((time.perf_counter() - started) * 1000, 2)}


@router.get("/health/live")
async def liveness() -> dict[str, str]:
    """The process answers; touches nothing else (for liveness probes and overhead baselines)."""
    return {"status": "ok"}


@router.get("/health")
async def health(request: Request) -> JSONResponse:
    """503 when the database is down. With the database up it is 200, and `status` is
    "degraded" while a configured engine has no healthy backend (jobs for it wait in the
    queue); an engine that is not configured reports "not_configured" and degrades nothing."""
    checks: dict[str, Any] = {"database": await check_database(request.app.state.db)}
    healthy = all(check["status"] == "ok" for check in checks.values())
    body = {"status": "ok" if healthy else "unavailable", "version": __version__, "checks": checks}
    engines: dict[str, dict[str, Any]] = {}
    comfyui = getattr(request.app.state, "comfyui", None)
    if comfyui is not None:
        engines["comfyui"] = comfyui.health()
    engines["llm"] = llm_health(request.app.state.settings)
    body["engines"] = engines
    if healthy and any(engine["status"] == "degraded" for engine in engines.values()):
        body["status"] = "degraded"
    return JSONResponse(body, status_code=200 if healthy else 503)


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus metrics; with `GENWAY_METRICS_TOKEN` set, only for `Authorization: Bearer`
    with that token."""
    token = request.app.state.settings.metrics_token
    if token is not None:
        given = request.headers.get("authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise Unauthorized("Metrics need 'Authorization: Bearer <GENWAY_METRICS_TOKEN>'")
    registry = request.app.state.metrics
    try:
        async with request.app.state.db.sessions() as session:
            registry.set_service_stats(await collect_stats(session))
    except Exception as exc:  # the request metrics are still worth serving
        log.error("service_stats_failed", error=str(exc))
    return Response(generate_latest(registry.registry), media_type=CONTENT_TYPE_LATEST)

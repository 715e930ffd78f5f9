"""`/health` tells an engine that is not configured ("not_configured", the service is still
"ok") from a configured one with no healthy backend ("degraded")."""

from __future__ import annotations

from typing import Any

import httpx

from genway.app import create_app
from genway.config import Settings
from tests.support import live_server

DEAD_BACKEND = "http://127.0.0.1:9"  # discard port: nothing answers
NO_LLM: dict[str, Any] = {
    "openai_base_url": None,
    "openai_api_key": None,
    "anthropic_base_url": None,
    "anthropic_api_key": None,
}


async def health_of(settings: Settings, **changes: Any) -> httpx.Response:
    app = create_app(settings.model_copy(update=changes))
    async with live_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        return await client.get("/health")


async def test_engines_that_are_not_configured_leave_the_service_ok(settings: Settings):
    response = await health_of(settings, comfyui_urls=[], **NO_LLM)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "ok", body
    assert body["engines"]["comfyui"] == {
        "status": "not_configured",
        "healthy_backends": 0,
        "backends": [],
    }
    assert body["engines"]["llm"] == {"status": "not_configured", "providers": []}


async def test_a_configured_engine_without_a_healthy_backend_degrades_the_service(
    settings: Settings,
):
    response = await health_of(settings, comfyui_urls=[DEAD_BACKEND], **NO_LLM)
    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded", body
    assert body["engines"]["comfyui"]["status"] == "degraded"
    assert body["engines"]["comfyui"]["healthy_backends"] == 0
    assert body["engines"]["llm"]["status"] == "not_configured"


async def test_a_configured_llm_provider_is_reported_and_the_service_stays_ok(
    settings: Settings,
):
    response = await health_of(
        settings, comfyui_urls=[], **{**NO_LLM, "openai_base_url": "http://127.0.0.1:9/v1"}
    )
    body = response.json()
    assert body["status"] == "ok", body
    assert body["engines"]["llm"] == {"status": "ok", "providers": ["openai"]}
    assert body["engines"]["comfyui"]["status"] == "not_configured"

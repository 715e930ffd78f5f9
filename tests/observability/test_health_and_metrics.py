"""Health, request ids, metrics labelled by route template, error bodies and body limits."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
import websockets
from pydantic import SecretStr

from genway.app import create_app
from genway.config import Settings
from tests.support import Tenant, live_server


async def test_health_ok(client: httpx.AsyncClient):
    response = await client.get("/health")
    assert response.status_code == 200
    assert response.json()["checks"]["database"]["status"] == "ok"


@pytest.mark.parametrize(
    "url",
    [
        "sqlite+aiosqlite:////nonexistent-dir/genway.db",
        "postgresql+asyncpg://postgres@127.0.0.1:1/x",
    ],
)
async def test_health_503_when_database_down(url: str, tmp_path: Path):
    settings = Settings(data_dir=tmp_path, database_url=url, secret_key="k" * 40)
    async with live_server(create_app(settings)) as base:
        async with httpx.AsyncClient(base_url=base) as client:
            response = await client.get("/health")
            authenticated = await client.get(
                "/v1/users/me", headers={"X-API-Key": "gw_" + "x" * 43}
            )
    assert response.status_code == 503
    assert response.json()["checks"]["database"]["status"] == "down"
    # A request that needs the database says "retry" (503), not "server bug" (500).
    assert authenticated.status_code == 503 and authenticated.headers["retry-after"] == "1"
    assert authenticated.json()["status_code"] == 503


async def test_request_id_echoed_or_generated(client: httpx.AsyncClient):
    echoed = await client.get("/health", headers={"X-Request-ID": "abc-123"})
    assert echoed.headers["x-request-id"] == "abc-123"
    generated = await client.get("/health")
    assert len(generated.headers["x-request-id"]) == 32
    hostile = await client.get("/health", headers={"X-Request-ID": "bad id\twith spaces"})
    assert hostile.headers["x-request-id"] != "bad id\twith spaces"


async def test_metrics_use_route_templates(client: httpx.AsyncClient, tenant: Tenant):
    await client.get(
        f"/v1/organizations/{tenant.org_id}/users/{tenant.owner_id}", headers=tenant.headers
    )
    text = (await client.get("/metrics")).text
    assert 'route="/v1/organizations/{org_id}/users/{user_id}"' in text
    assert f"/v1/organizations/{tenant.org_id}/" not in text
    assert "genway_http_request_duration_seconds_bucket" in text


async def test_errors_have_one_shape_and_unknown_fields_are_rejected(
    client: httpx.AsyncClient, tenant: Tenant
):
    missing = await client.get("/no-such-route")
    assert missing.status_code == 404 and missing.json() == {
        "detail": "Not Found",
        "message": "Not Found",
        "status_code": 404,
    }
    unknown_field = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        json={"name": "x", "admin": True},
        headers=tenant.headers,
    )
    assert unknown_field.status_code == 422
    assert unknown_field.json()["detail"][0]["loc"] == ["body", "admin"]
    assert unknown_field.json()["message"] == "admin: Extra inputs are not permitted"
    broken_json = await client.post(
        "/api/v1/auth/login", content=b"{not json", headers={"content-type": "application/json"}
    )
    assert broken_json.status_code == 422 and broken_json.json()["status_code"] == 422


async def test_json_bodies_over_limit_get_413(client: httpx.AsyncClient, tenant: Tenant):
    big = b'{"name": "' + b"x" * (1024 * 1024 + 10) + b'"}'
    declared = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        content=big,
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert declared.status_code == 413 and declared.json()["status_code"] == 413

    async def chunks():
        for start in range(0, len(big), 65536):
            yield big[start : start + 65536]

    streamed = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        content=chunks(),
        headers={**tenant.headers, "content-type": "application/json"},
    )
    assert streamed.status_code == 413


async def test_websockets_are_logged_with_their_real_status(
    settings: Settings, tenant: Tenant, capfd: pytest.CaptureFixture[str]
):
    app = create_app(settings.model_copy(update={"log_level": "INFO"}))
    async with live_server(app) as url:
        ws = url.replace("http://", "ws://") + f"/v1/organizations/{tenant.org_id}/events"
        async with websockets.connect(ws, additional_headers=tenant.headers):
            pass
        async with websockets.connect(ws) as refused:  # no credentials: closed with 4401
            with pytest.raises(websockets.ConnectionClosed):
                await refused.recv()
    lines = [
        json.loads(line) for line in capfd.readouterr().err.splitlines() if '"request"' in line
    ]
    statuses = [line["status"] for line in lines if line.get("method") == "WS"]
    assert statuses == [101, 101], lines  # an accepted socket, then one accepted to be closed


async def test_backend_credentials_stay_out_of_health_and_logs(
    settings: Settings, capfd: pytest.CaptureFixture[str]
):
    secret_url = "http://svc:S3cretPass@127.0.0.1:9"
    app = create_app(
        settings.model_copy(
            update={
                "comfyui_urls": [secret_url],
                "comfyui_health_interval_s": 0.05,
                "log_level": "INFO",
            }
        )
    )
    async with live_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        health = await client.get("/health")
        for _ in range(100):  # until the backend's first check failed
            if health.json()["engines"]["comfyui"]["backends"][0]["last_error"]:
                break
            await asyncio.sleep(0.05)
            health = await client.get("/health")
    backend = health.json()["engines"]["comfyui"]["backends"][0]
    assert backend["url"] == "http://svc:***@127.0.0.1:9"
    assert backend["last_error"] and "S3cretPass" not in health.text
    logged = capfd.readouterr().err
    assert "comfyui_backend_unhealthy" in logged and "S3cretPass" not in logged


async def test_metrics_can_be_kept_for_a_token_holder(settings: Settings):
    token = SecretStr("scrape-me-0123456789")
    app = create_app(settings.model_copy(update={"metrics_token": token}))
    async with live_server(app) as url, httpx.AsyncClient(base_url=url) as client:
        assert (await client.get("/metrics")).status_code == 401
        wrong = await client.get("/metrics", headers={"Authorization": "Bearer nope"})
        assert wrong.status_code == 401
        right = await client.get(
            "/metrics", headers={"Authorization": "Bearer scrape-me-0123456789"}
        )
        assert right.status_code == 200 and "genway" in right.text

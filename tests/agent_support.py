"""Shared by the project, agent and Pro Mode tests: the fake LLM vendors, settings that point
Genway at them (with an embedded worker), and small HTTP helpers."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from pydantic import SecretStr

from genway.config import Settings
from genway.engines.llm.runtime import close_routers
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support import Tenant

TERMINAL = {"succeeded", "failed", "cancelled"}
MINI = "openai:gpt-4o-mini"
SONNET = "anthropic:claude-sonnet-4-6"
ROUTES = {
    "research": [MINI, SONNET],
    "wireframe": [MINI],
    "code": [MINI, SONNET],
    "qa": [MINI],
    "pedagogy": [MINI],
    "judge": ["openai:gpt-4o"],
    "synthesis": [SONNET],
}


@pytest.fixture
async def fake_openai() -> AsyncIterator[FakeOpenAIServer]:
    async with FakeOpenAIServer() as server:
        yield server


@pytest.fixture
async def fake_anthropic() -> AsyncIterator[FakeAnthropicServer]:
    async with FakeAnthropicServer() as server:
        yield server


@pytest.fixture
def routing_file(tmp_path: Path) -> Path:
    path = tmp_path / "routing.json"
    path.write_text(json.dumps(ROUTES))
    return path


@pytest.fixture
async def close_llm_clients() -> AsyncIterator[None]:
    yield
    await close_routers()


def llm_settings(
    settings: Settings,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
    routing_file: Path,
    **changes: Any,
) -> Settings:
    """The test settings with an embedded worker and both fake vendors configured."""
    return settings.model_copy(
        update={
            "embedded_worker": True,
            "worker_concurrency": 4,
            "retry_base_s": 0.05,
            "reaper_interval_s": 0.5,
            "shutdown_grace_s": 2.0,
            "openai_base_url": fake_openai.base_url,
            "openai_api_key": SecretStr(str(fake_openai.api_key)),
            "anthropic_base_url": fake_anthropic.base_url,
            "anthropic_api_key": SecretStr(str(fake_anthropic.api_key)),
            "routing_file": routing_file,
            "llm_timeout_s": 5.0,
            "llm_max_retries": 1,
            "llm_retry_base_s": 0.01,
            **changes,
        }
    )


def org_url(tenant: Tenant, path: str = "") -> str:
    return f"/v1/organizations/{tenant.org_id}{path}"


async def create_project(
    client: httpx.AsyncClient, tenant: Tenant, **fields: Any
) -> dict[str, Any]:
    fields.setdefault("name", "demo")
    response = await client.post(org_url(tenant, "/projects"), json=fields, headers=tenant.headers)
    assert response.status_code == 201, response.text
    return dict(response.json())


async def put_file(
    client: httpx.AsyncClient, tenant: Tenant, project_id: int, path: str, content: str
) -> httpx.Response:
    return await client.put(
        org_url(tenant, f"/projects/{project_id}/files"),
        json={"path": path, "content": content},
        headers=tenant.headers,
    )


async def wait_job(
    client: httpx.AsyncClient, tenant: Tenant, job_id: int, statuses: set[str] = TERMINAL
) -> dict[str, Any]:
    """Poll the jobs API until the job reaches one of `statuses` (at most 30 s)."""
    job: dict[str, Any] = {}
    for _ in range(600):
        response = await client.get(org_url(tenant, f"/jobs/{job_id}"), headers=tenant.headers)
        job = dict(response.json())
        if job["status"] in statuses:
            return job
        await asyncio.sleep(0.05)
    raise AssertionError(f"job {job_id} never reached {statuses}: {job}")


async def job_events(
    client: httpx.AsyncClient, tenant: Tenant, job_id: int
) -> list[dict[str, Any]]:
    """Every event of a job, through the SSE stream (which ends with the job)."""
    events = []
    url = org_url(tenant, f"/jobs/{job_id}/events")
    async with client.stream("GET", url, headers=tenant.headers) as response:
        assert response.status_code == 200
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                events.append(json.loads(line[6:]))
    return events


def outputs(events: list[dict[str, Any]], name: str) -> list[dict[str, Any]]:
    return [e["data"] for e in events if e["type"] == "output" and e["data"].get("name") == name]

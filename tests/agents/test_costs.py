"""What agent runs cost: the packaged list prices (see test_agent_runs), a deployment's own
price file, and a price file that cannot be used."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import httpx
import pytest

from genway.config import Settings
from tests.agent_support import org_url, wait_job
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support import Tenant

OWN_PRICES = {"openai:gpt-4o": [1.0, 4.0]}


@pytest.fixture
def prices(request: pytest.FixtureRequest, tmp_path: Path) -> Path:
    path = tmp_path / "prices.json"
    content = request.param
    path.write_text(content if isinstance(content, str) else json.dumps(content))
    return path


@pytest.fixture
def settings(settings: Settings, prices: Path) -> Settings:
    return settings.model_copy(update={"model_prices_file": prices})


async def run_research(client: httpx.AsyncClient, tenant: Tenant) -> dict[str, Any]:
    response = await client.post(
        org_url(tenant, "/agent/run"),
        json={"prompt": "Summarize", "task": "research", "model": "openai:gpt-4o"},
        headers=tenant.headers,
    )
    assert response.status_code == 200, response.text
    return await wait_job(client, tenant, response.json()["id"])


@pytest.mark.parametrize("prices", [OWN_PRICES], indirect=True)
async def test_a_price_file_replaces_the_list_price(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    fake_openai.reply("done", prompt_tokens=1000, completion_tokens=500)
    job = await run_research(client, tenant)
    assert job["status"] == "succeeded", job
    usage = job["result"]["usage"]
    assert usage["cost_usd"] == (1000 * 1.0 + 500 * 4.0) / 1e6
    assert usage["by_model"]["openai:gpt-4o"]["cost_microusd"] == 3000
    totals = (await client.get(org_url(tenant, "/usage"), headers=tenant.headers)).json()
    assert totals["totals"]["cost_microusd:openai:gpt-4o"] == 3000 and totals["cost_usd"] == 0.003


@pytest.mark.parametrize("prices", [{"gpt-4o": [1]}, "not json"], indirect=True)
async def test_an_unusable_price_file_fails_runs_with_a_clear_error(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    job = await run_research(client, tenant)
    assert job["status"] == "failed" and job["error"]["code"] == "llm_not_configured"
    assert "prices.json" in job["error"]["message"] and fake_openai.calls == 0

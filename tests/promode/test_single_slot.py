"""A session never waits for a worker slot its own instances need: with one slot in total, a
session of three instances still runs to the end."""

from __future__ import annotations

import httpx
import pytest

from genway.config import Settings
from tests.agent_support import create_project, org_url, wait_job
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.promode.test_sessions import scripted, start
from tests.support import Tenant


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"worker_concurrency": 1})


async def test_a_session_runs_on_a_single_worker_slot(
    client: httpx.AsyncClient,
    tenant: Tenant,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
):
    scripted(fake_openai, fake_anthropic)
    project = await create_project(client, tenant)
    first = await start(
        client, tenant, project["id"], agents=["alpha", "beta", "gamma"], max_iterations=1
    )
    second = await start(client, tenant, project["id"], agents=["delta", "beta"], max_iterations=1)
    for session in (first, second):
        done = await wait_job(client, tenant, session["id"])
        assert done["status"] == "succeeded", done
    instances = await client.get(
        org_url(tenant, "/jobs"), params={"kind": "promode.agent"}, headers=tenant.headers
    )
    assert len(instances.json()["items"]) == 5
    assert {job["status"] for job in instances.json()["items"]} == {"succeeded"}

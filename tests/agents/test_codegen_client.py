"""Codegen's official Python client (`codegen-api-client` 1.0.0) creates and fetches agent runs
against Genway, and seed 002's run-agent API maps onto the same jobs."""

from __future__ import annotations

import asyncio

import httpx

from tests.agent_support import create_project, wait_job
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support import Tenant


async def test_codegen_client_creates_and_fetches_runs(
    server: str, client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    import codegen_api_client as cg

    answer = '```json\n{"summary": "Reviewed; nothing to change", "edits": []}\n```'
    fake_openai.reply(answer)
    auth = f"Bearer {tenant.key}"

    def create() -> object:
        with cg.ApiClient(cg.Configuration(host=server)) as api:
            return cg.AgentsApi(api).create_agent_run_v1_organizations_org_id_agent_run_post(
                org_id=tenant.org_id,
                create_agent_run_input=cg.CreateAgentRunInput(prompt="Review the repository"),
                authorization=auth,
            )

    def fetch(run_id: int) -> object:
        with cg.ApiClient(cg.Configuration(host=server)) as api:
            return cg.AgentsApi(
                api
            ).get_agent_run_v1_organizations_org_id_agent_run_agent_run_id_get(
                org_id=tenant.org_id, agent_run_id=run_id, authorization=auth
            )

    created = await asyncio.to_thread(create)
    assert isinstance(created, cg.AgentRunResponse)
    assert created.organization_id == tenant.org_id and created.status == "ACTIVE"
    await wait_job(client, tenant, created.id)
    fetched = await asyncio.to_thread(fetch, created.id)
    assert isinstance(fetched, cg.AgentRunResponse)
    assert fetched.id == created.id and fetched.status == "COMPLETE"
    assert fetched.result == answer
    assert fetched.created_at == created.created_at and fetched.web_url == created.web_url


async def test_seed002_run_agent_maps_onto_jobs(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, fake_openai: FakeOpenAIServer
):
    project = await create_project(client, tenant, name="forge")
    fake_openai.reply("Research notes")
    started = await client.post(
        "/v1/run-agent",
        json={
            "project_id": project["id"],
            "agent_type": "research",
            "input_context": {"prompt": "Compare ORMs", "constraints": ["async"]},
        },
        headers=tenant.headers,
    )
    assert started.status_code == 202, started.text
    body = started.json()
    assert body["status"] == "queued" and body["estimated_time"] == 60
    await wait_job(client, tenant, body["job_id"])
    sent = fake_openai.requests[-1].messages[-1]["content"]
    assert sent.startswith("Compare ORMs") and '"async"' in sent and "Project: forge" in sent

    job = (await client.get(f"/v1/jobs/{body['job_id']}", headers=tenant.headers)).json()
    assert job["status"] == "completed" and job["agent_type"] == "research"
    assert job["result"]["text"] == "Research notes" and job["project_id"] == project["id"]
    listed = await client.get(
        f"/v1/jobs/{project['id']}/list", params={"limit": 10}, headers=tenant.headers
    )
    assert listed.json()["count"] == 1 and listed.json()["jobs"][0]["job_id"] == body["job_id"]
    again = await client.post(
        "/v1/run-agent",
        json={"project_id": project["id"], "agent_type": "research"},
        headers=tenant.headers,
    )
    assert again.status_code == 202 and again.json()["estimated_time"] >= 1
    await wait_job(client, tenant, again.json()["job_id"])

    bad = await client.post(
        "/v1/run-agent",
        json={"project_id": project["id"], "agent_type": "sorcery"},
        headers=tenant.headers,
    )
    assert bad.status_code == 422
    attacker = other_tenant.headers
    for url in (f"/v1/jobs/{body['job_id']}", f"/v1/jobs/{project['id']}/list"):
        response = await client.get(url, headers=attacker)
        assert response.status_code == 404, (url, response.text)
    foreign = await client.post(
        "/v1/run-agent",
        json={"project_id": project["id"], "agent_type": "qa"},
        headers=attacker,
    )
    assert foreign.status_code == 404

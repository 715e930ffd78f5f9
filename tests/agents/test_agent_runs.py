"""Agent runs through Codegen's endpoints, run by the embedded worker against the fake vendors:
code edits as one revision, streaming, usage metering, routing fallback, retries, timeouts,
cancellation, listing, logs and resume."""

from __future__ import annotations

import json
from typing import Any

import httpx

from tests.agent_support import (
    create_project,
    job_events,
    org_url,
    outputs,
    put_file,
    wait_job,
)
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support import Tenant

RUN_KEYS = {
    "id",
    "organization_id",
    "status",
    "created_at",
    "web_url",
    "result",
    "summary",
    "source_type",
    "github_pull_requests",
    "metadata",
    "plan",
    "branch",
    "commit",
    "diff_stat",
}


def edit_plan(summary: str, edits: list[dict[str, Any]]) -> str:
    return f"Here is the change.\n```json\n{json.dumps({'summary': summary, 'edits': edits})}\n```"


async def start_run(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post(org_url(tenant, "/agent/run"), json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"] == "application/json"
    return dict(response.json())


async def finished_run(client: httpx.AsyncClient, tenant: Tenant, run_id: int) -> dict[str, Any]:
    await wait_job(client, tenant, run_id)
    response = await client.get(org_url(tenant, f"/agent/run/{run_id}"), headers=tenant.headers)
    assert response.status_code == 200 and response.headers["content-type"] == "application/json"
    return dict(response.json())


async def test_structured_edits_commit_on_the_branch_and_merge_as_one_revision(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    """A model without tool calling answers with a JSON edit plan: its edits are one commit on
    the run's branch, and merging the branch makes them one revision of the project."""
    project = await create_project(client, tenant, name="calc")
    pid = project["id"]
    await put_file(client, tenant, pid, "calc.py", "def add(a, b):\n    return a - b\n")
    await put_file(client, tenant, pid, "old.py", "legacy = True\n")
    plan = edit_plan(
        "Fix add and test it",
        [
            {"path": "calc.py", "action": "write", "content": "def add(a, b):\n    return a + b\n"},
            {
                "path": "tests/test_calc.py",
                "content": "from calc import add\n",
                "language": "python",
            },
            {"path": "old.py", "action": "delete"},
        ],
    )
    fake_openai.tools_supported = False
    fake_openai.reply(plan, prompt_tokens=120, completion_tokens=45)

    run = await start_run(
        client, tenant, prompt="Fix the add bug", project_id=pid, metadata={"ticket": "CALC-1"}
    )
    assert set(run) == RUN_KEYS and run["status"] == "ACTIVE" and run["source_type"] == "API"
    assert run["organization_id"] == tenant.org_id and run["metadata"] == {"ticket": "CALC-1"}
    assert run["created_at"].endswith("Z") and run["web_url"].endswith(f"/agent/run/{run['id']}")
    done = await finished_run(client, tenant, run["id"])
    assert done["status"] == "COMPLETE", done
    assert done["result"] == "Fix add and test it" and done["summary"] == "Fix add and test it"
    assert done["github_pull_requests"] == [] and done["branch"] == f"genway/run-{run['id']}"
    assert done["diff_stat"]["files_changed"] == 3

    sent = fake_openai.requests[-1]
    assert sent.model == "gpt-4o-mini" and sent.stream and "tools" not in sent.body
    assert "code agent" in sent.messages[0]["content"]
    assert "calc.py" in sent.messages[-1]["content"]  # the project's files were listed

    untouched = await client.get(
        org_url(tenant, f"/projects/{pid}/files/calc.py"), headers=tenant.headers
    )
    assert "a - b" in untouched.json()["content"]
    merged = await client.post(
        org_url(tenant, f"/projects/{pid}/merge"),
        json={"branch": done["branch"]},
        headers=tenant.headers,
    )
    assert merged.status_code == 200, merged.text
    revisions = (
        await client.get(org_url(tenant, f"/projects/{pid}/revisions"), headers=tenant.headers)
    ).json()
    latest = revisions["items"][0]
    assert latest["revision"] == 3 and revisions["total"] == 3
    assert {(c["path"], c["action"]) for c in latest["changes"]} == {
        ("calc.py", "write"),
        ("old.py", "delete"),
        ("tests/test_calc.py", "write"),
    }
    fixed = await client.get(
        org_url(tenant, f"/projects/{pid}/files/calc.py"), headers=tenant.headers
    )
    assert "a + b" in fixed.json()["content"] and fixed.json()["revision"] == 3

    events = await job_events(client, tenant, run["id"])
    assert "".join(d["text"] for d in outputs(events, "delta")) == plan
    assert len(outputs(events, "edits")[0]["files"]) == 3
    assert [e["data"]["status"] for e in events if e["type"] == "status"][-1] == "succeeded"
    job = (await client.get(org_url(tenant, f"/jobs/{run['id']}"), headers=tenant.headers)).json()
    assert job["result"]["usage"]["tokens_in"] == 120 and len(job["result"]["commit"]) == 40
    # gpt-4o-mini's list price: $0.15 in and $0.60 out per million tokens.
    assert job["result"]["usage"]["cost_usd"] == (120 * 0.15 + 45 * 0.60) / 1e6
    assert job["result"]["usage"]["unpriced_models"] == []

    usage = (await client.get(org_url(tenant, "/usage"), headers=tenant.headers)).json()
    assert usage["totals"]["tokens_in:openai:gpt-4o-mini"] == 120
    assert usage["totals"]["tokens_out:openai:gpt-4o-mini"] == 45
    assert usage["totals"]["cost_microusd:openai:gpt-4o-mini"] == 45
    assert usage["cost_usd"] == 0.000045
    assert usage["totals"]["agent_runs"] == 1


async def test_prose_succeeds_and_refused_paths_fail_the_run(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    project = await create_project(client, tenant)
    fake_openai.tools_supported = False
    fake_openai.reply("I would rather not produce JSON.")
    prose = await start_run(client, tenant, prompt="Do it", project_id=project["id"])
    answered = await finished_run(client, tenant, prose["id"])
    assert (
        answered["status"] == "COMPLETE"
        and answered["result"] == "I would rather not produce JSON."
    )
    assert answered["commit"] is None
    fake_openai.reply(edit_plan("escape", [{"path": "../../etc/passwd", "content": "x"}]))
    escape = await start_run(client, tenant, prompt="Do it", project_id=project["id"])
    refused = await finished_run(client, tenant, escape["id"])
    assert refused["status"] == "FAILED" and ".." in refused["summary"]
    branches = await client.get(
        org_url(tenant, f"/projects/{project['id']}/branches"), headers=tenant.headers
    )
    assert f"genway/run-{escape['id']}" not in branches.text
    head = await client.get(org_url(tenant, f"/projects/{project['id']}"), headers=tenant.headers)
    assert head.json()["head_revision"] == 0


async def test_routing_falls_back_and_retries_honour_retry_after(
    client: httpx.AsyncClient,
    tenant: Tenant,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
):
    fake_openai.fail(500, times=2)
    qa = await start_run(client, tenant, prompt="Review", task="qa")
    # qa routes to openai only: after its own retry there is nothing to fall back to.
    failed = await finished_run(client, tenant, qa["id"])
    job = await client.get(org_url(tenant, f"/jobs/{qa['id']}"), headers=tenant.headers)
    assert failed["status"] == "FAILED" and job.json()["error"]["code"] == "llm_unavailable"

    fake_openai.fail(500, times=2)
    fake_anthropic.reply("from claude", prompt_tokens=9, completion_tokens=2)
    research = await start_run(client, tenant, prompt="Explain", task="research")
    done = await finished_run(client, tenant, research["id"])
    assert done["status"] == "COMPLETE" and done["result"] == "from claude"
    logs = await client.get(
        org_url(tenant, f"/agent/run/{research['id']}/logs"), headers=tenant.headers
    )
    attempts = [log for log in logs.json()["logs"] if log["tool_name"] == "llm"]
    assert [a["tool_input"]["model"] for a in attempts] == [
        "openai:gpt-4o-mini",
        "anthropic:claude-sonnet-4-6",
    ]
    assert "500" in attempts[1]["tool_input"]["previous_error"]

    fake_openai.fail(429, retry_after=0)
    fake_openai.reply("after the wait")
    calls_before = fake_openai.calls
    retried = await start_run(client, tenant, prompt="Review again", task="qa")
    result = await finished_run(client, tenant, retried["id"])
    assert result["status"] == "COMPLETE" and result["result"] == "after the wait"
    assert fake_openai.calls - calls_before == 2

    usage = (await client.get(org_url(tenant, "/usage"), headers=tenant.headers)).json()
    assert usage["totals"]["tokens_in:anthropic:claude-sonnet-4-6"] == 9


async def test_call_timeout_fallback_run_deadline_and_cancel(
    client: httpx.AsyncClient,
    tenant: Tenant,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
):
    fake_openai.hang(times=2)
    fake_anthropic.reply(edit_plan("nothing to do", []))
    slow = await start_run(client, tenant, prompt="Tidy up")
    done = await finished_run(client, tenant, slow["id"])
    assert done["status"] == "COMPLETE" and done["summary"] == "nothing to do"

    fake_openai.hang(times=None)
    fake_anthropic.hang(times=None)
    submitted = await client.post(
        org_url(tenant, "/jobs"),
        json={"kind": "agent.run", "input": {"prompt": "Never answered"}, "timeout_s": 0.8},
        headers=tenant.headers,
    )
    assert submitted.status_code == 201, submitted.text
    timed_out = await finished_run(client, tenant, submitted.json()["id"])
    assert timed_out["status"] == "TIMEOUT" and "0.8 s timeout" in timed_out["summary"]

    stuck = await start_run(client, tenant, prompt="Think forever", task="research")
    await wait_job(client, tenant, stuck["id"], {"running"})
    cancel = await client.post(
        org_url(tenant, f"/jobs/{stuck['id']}/cancel"), headers=tenant.headers
    )
    assert cancel.status_code == 200
    assert (await finished_run(client, tenant, stuck["id"]))["status"] == "CANCELLED"


async def test_list_logs_resume_and_validation(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, fake_openai: FakeOpenAIServer
):
    fake_openai.reply("First answer.\nMore detail.")
    first = await start_run(
        client, tenant, prompt="Question one", task="research", model="openai:gpt-4.1"
    )
    await finished_run(client, tenant, first["id"])
    assert fake_openai.requests[-1].model == "gpt-4.1"
    fake_openai.reply("Second answer.")
    resumed = await client.post(
        org_url(tenant, "/agent/run/resume"),
        json={"agent_run_id": first["id"], "prompt": "And a follow-up?"},
        headers=tenant.headers,
    )
    assert resumed.status_code == 200, resumed.text
    second = await finished_run(client, tenant, resumed.json()["id"])
    assert second["id"] != first["id"] and second["result"] == "Second answer."
    turns = [(m["role"], m["content"]) for m in fake_openai.requests[-1].messages]
    assert turns[1:] == [
        ("user", "Question one"),
        ("assistant", "First answer.\nMore detail."),
        ("user", "And a follow-up?"),
    ]
    assert fake_openai.requests[-1].model == "gpt-4.1"  # the resumed run keeps its routing

    runs_url = org_url(tenant, "/agent/runs")
    listed = (await client.get(runs_url, headers=tenant.headers)).json()
    assert [r["id"] for r in listed["items"]] == [second["id"], first["id"]]
    assert listed["total"] == 2 and listed["items"][1]["summary"] == "First answer."
    mine = await client.get(runs_url, params={"user_id": tenant.owner_id}, headers=tenant.headers)
    assert mine.json()["total"] == 2
    nobody = await client.get(runs_url, params={"user_id": 999}, headers=tenant.headers)
    slack = await client.get(runs_url, params={"source_type": "SLACK"}, headers=tenant.headers)
    api = await client.get(
        runs_url, params={"source_type": "API", "limit": 1}, headers=tenant.headers
    )
    assert nobody.json()["total"] == 0 and slack.json()["total"] == 0
    assert api.json()["total"] == 2 and len(api.json()["items"]) == 1

    logs = await client.get(
        org_url(tenant, f"/agent/run/{first['id']}/logs"), headers=tenant.headers
    )
    alpha = await client.get(
        f"/v1/alpha/organizations/{tenant.org_id}/agent/run/{first['id']}/logs",
        headers=tenant.headers,
    )
    assert logs.status_code == alpha.status_code == 200
    assert logs.json() == alpha.json()
    body = logs.json()
    types = [log["message_type"] for log in body["logs"]]
    assert types[0] == "ACTION" and "USER_MESSAGE" in types and "FINAL_ANSWER" in types
    assert body["total_logs"] == len(body["logs"]) and body["status"] == "COMPLETE"
    paged = await client.get(
        org_url(tenant, f"/agent/run/{first['id']}/logs"),
        params={"skip": 1, "limit": 2},
        headers=tenant.headers,
    )
    assert paged.json()["logs"] == body["logs"][1:3] and paged.json()["page"] == 1

    project = await create_project(client, other_tenant)
    for bad in (
        {},
        {"prompt": ""},
        {"prompt": "x", "agent_type": "bogus"},
        {"prompt": "x", "task": "poetry"},
        {"prompt": "x", "model": "gpt-4o"},
        {"prompt": "x", "images": ["http://example.com/cat.png"]},
        {"prompt": "x", "unknown": 1},
    ):
        refused = await client.post(org_url(tenant, "/agent/run"), json=bad, headers=tenant.headers)
        assert refused.status_code == 422, (bad, refused.text)
    foreign = await client.post(
        org_url(tenant, "/agent/run"),
        json={"prompt": "x", "project_id": project["id"]},
        headers=tenant.headers,
    )
    assert foreign.status_code == 404
    unknown = await client.post(
        org_url(tenant, "/agent/run"),
        json={"prompt": "x", "model": "mistral:large"},
        headers=tenant.headers,
    )
    assert unknown.status_code == 200  # accepted; the run fails: no such provider
    failed = await finished_run(client, tenant, unknown.json()["id"])
    assert failed["status"] == "FAILED" and "not configured" in failed["summary"]

    fake_openai.hang(times=None)
    active = await start_run(client, tenant, prompt="Slow")
    busy = await client.post(
        org_url(tenant, "/agent/run/resume"),
        json={"agent_run_id": active["id"], "prompt": "More"},
        headers=tenant.headers,
    )
    assert busy.status_code == 409
    await client.post(org_url(tenant, f"/jobs/{active['id']}/cancel"), headers=tenant.headers)
    await wait_job(client, tenant, active["id"])


async def test_other_organizations_cannot_see_runs(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, fake_openai: FakeOpenAIServer
):
    fake_openai.reply("classified")
    run = await start_run(client, tenant, prompt="secret plans", task="research")
    await finished_run(client, tenant, run["id"])
    attacker = other_tenant.headers
    for url in (
        f"/v1/organizations/{other_tenant.org_id}/agent/run/{run['id']}",
        f"/v1/organizations/{other_tenant.org_id}/agent/run/{run['id']}/logs",
        f"/v1/alpha/organizations/{other_tenant.org_id}/agent/run/{run['id']}/logs",
        f"/v1/alpha/organizations/{tenant.org_id}/agent/run/{run['id']}/logs",
        f"/v1/organizations/{other_tenant.org_id}/jobs/{run['id']}",
    ):
        response = await client.get(url, headers=attacker)
        assert response.status_code == 404, (url, response.text)
        assert "classified" not in response.text
    listed = await client.get(
        f"/v1/organizations/{other_tenant.org_id}/agent/runs", headers=attacker
    )
    assert listed.json()["total"] == 0
    resume = await client.post(
        f"/v1/organizations/{other_tenant.org_id}/agent/run/resume",
        json={"agent_run_id": run["id"], "prompt": "leak it"},
        headers=attacker,
    )
    assert resume.status_code == 404

"""Seed 004's loop on a sample repository, end to end: an agent run opens a pull request whose
test fails, GitHub's webhook starts a validation, the failure goes back to an agent that pushes
a fix, the new head is validated and auto-merged; every step an event, the commit statuses and
ValidationStates say so, and the project's secret never shows."""

from __future__ import annotations

import asyncio
import json
import os
from typing import Any

import httpx
import pytest

from genway.sandbox import sandbox_unavailable_reason
from tests.agent_support import job_events, org_url, wait_job
from tests.fakes.github import FakeGitHub
from tests.fakes.openai_server import FakeOpenAIServer
from tests.github.conftest import CALC, pinned_project
from tests.support import Tenant

SECRET = "tok-3f9a7c1e55d24b"
MULTIPLY_BUG = CALC + "\n\ndef multiply(a, b):\n    return b + a\n"
MULTIPLY_TEST = (
    "import unittest\n\nfrom calc import multiply\n\n\n"
    "class MultiplyTest(unittest.TestCase):\n"
    "    def test_multiply(self):\n        self.assertEqual(multiply(3, 4), 12)\n"
)

needs_sandbox = pytest.mark.skipif(
    sandbox_unavailable_reason() is not None and not os.environ.get("CI"),
    reason=f"sandboxed commands unavailable: {sandbox_unavailable_reason()}",
)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


async def validations(
    client: httpx.AsyncClient, tenant: Tenant, count: int
) -> list[dict[str, Any]]:
    """The organization's validations, oldest first, once `count` of them have finished."""
    items: list[dict[str, Any]] = []
    for _ in range(1200):
        answer = await client.get(org_url(tenant, "/validations"), headers=tenant.headers)
        items = list(reversed(answer.json()["items"]))
        finished = [v for v in items if v["status"] not in ("queued", "running")]
        if len(finished) >= count:
            return items
        await asyncio.sleep(0.05)
    raise AssertionError(f"{count} validations never finished: {items}")


async def org_event_types(client: httpx.AsyncClient, tenant: Tenant) -> list[str]:
    answer = await client.get(
        org_url(tenant, "/events"),
        params={"limit": 100, "types": "pr.*,validation.*"},
        headers=tenant.headers,
    )
    assert answer.status_code == 200, answer.text
    return [e["type"] for e in answer.json()["items"]]


@needs_sandbox
async def test_agent_pr_fails_validation_gets_fixed_and_is_merged(
    client: httpx.AsyncClient,
    tenant: Tenant,
    github: FakeGitHub,
    octo: str,
    fake_openai: FakeOpenAIServer,
    capfd: pytest.CaptureFixture[str],
) -> None:
    project = await pinned_project(
        client,
        tenant,
        octo,
        setup_commands=['test -n "$API_TOKEN" && echo "token is $API_TOKEN"'],
        test_commands=["python3 run_tests.py"],
        secrets={"API_TOKEN": SECRET},
        auto_merge_enabled=True,
        merge_method="squash",
        max_fix_attempts=2,
    )
    # The first run writes multiply() with a bug and its test; the fix run corrects it.
    fake_openai.reply(
        "Adding multiply.",
        tool_calls=[
            call("write_file", path="calc.py", content=MULTIPLY_BUG),
            call("write_file", path="test_multiply.py", content=MULTIPLY_TEST),
        ],
    )
    fake_openai.reply("", tool_calls=[call("finish", summary="Add multiply()")])
    fake_openai.reply(
        "The test says 7 != 12: multiply adds.",
        tool_calls=[
            call("edit_file", path="calc.py", old_text="return b + a", new_text="return a * b")
        ],
    )
    fake_openai.reply("", tool_calls=[call("finish", summary="multiply() multiplies")])

    started = await client.post(
        org_url(tenant, "/agent/run"),
        json={"prompt": "Add multiply(a, b) with a test", "project_id": project["id"]},
        headers=tenant.headers,
    )
    assert started.status_code == 200, started.text
    run_id = started.json()["id"]
    run = await wait_job(client, tenant, run_id)
    assert run["status"] == "succeeded", run
    pull = run["result"]["pull_request"]
    assert pull["created"] is True and pull["title"] == "Add multiply()"
    on_github = github.pulls("octo", "demo")
    assert [p.number for p in on_github] == [pull["number"]]
    assert on_github[0].head == f"genway/run-{run_id}" and on_github[0].base == "main"
    codegen = await client.get(org_url(tenant, f"/agent/run/{run_id}"), headers=tenant.headers)
    assert codegen.json()["github_pull_requests"][0]["url"] == pull["url"]

    first = (await validations(client, tenant, 1))[0]
    assert first["status"] == "failed", first
    assert first["pr_number"] == pull["number"] and first["agent_run_id"] == run_id
    assert first["deployment_status"] == "success"
    tests = first["test_results"]["tests"]
    assert (tests["passed"], tests["failed"]) == (1, 1), tests
    assert tests["failures"][0]["name"] == "test_multiply"
    assert "7 != 12" in tests["failures"][0]["message"]
    assert first["fix_run_id"] is not None and first["merged"] is False

    fix = await wait_job(client, tenant, first["fix_run_id"])
    assert fix["status"] == "succeeded", fix
    assert fix["result"]["pull_request"]["number"] == pull["number"]
    fix_prompt = json.dumps(fake_openai.requests[2].body)
    assert "7 != 12" in fix_prompt  # the failure's output went back to the agent

    final = (await validations(client, tenant, 2))[-1]
    assert final["status"] == "passed", final
    assert final["merged"] is True and final["auto_merge_eligible"] is True
    assert final["head_sha"] == fix["result"]["pull_request"]["head_sha"]

    merged = github.pulls("octo", "demo")[0]
    assert merged.merged and merged.state == "closed" and merged.merge_method == "squash"
    assert "return a * b" in (github.read_file("octo", "demo", "main", "calc.py") or "")
    statuses = github.statuses("octo", "demo", first["head_sha"])
    assert [s.state for s in statuses][-1] == "failure"
    assert [s.state for s in github.statuses("octo", "demo", final["head_sha"])][-1] == "success"

    types = await org_event_types(client, tenant)
    for expected in ("pr.created", "validation.started", "validation.completed", "pr.updated"):
        assert expected in types, types
    assert types.count("validation.completed") == 2

    events = await job_events(client, tenant, first["job_id"])
    logged = "".join(e["data"].get("text", "") for e in events if e["type"] == "log")
    assert "token is ***" in logged and "2 tests, 1 failed" in logged
    everything = json.dumps([first, final, events, types])
    assert SECRET not in everything
    assert SECRET not in capfd.readouterr().err
    assert github.schema_violations == [] and github.webhook_violations == []

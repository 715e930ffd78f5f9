"""Pro Mode code sessions: candidates are agent-loop runs on branches of their own, the judge
compares their diffs and test output, and the synthesis merges the winners' code on the
session's branch. The fake vendors are scripted by what each request's system prompt says it is
(a candidate names its agent, the synthesis is asked to merge, the judge to judge)."""

from __future__ import annotations

import asyncio
import json
import os
import re
from typing import Any

import httpx
import pytest

from genway.config import Settings
from genway.sandbox import sandbox_unavailable_reason
from tests.agent_support import create_project, job_events, org_url, outputs, put_file, wait_job
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer, Reply, text_of
from tests.promode.test_sessions import detail, start
from tests.support import Tenant

AGENT = re.compile(r"You are the '(\w+)' agent")
PAIR = re.compile(r"Candidate A:\n(.*?)\n\nCandidate B:\n(.*)", re.DOTALL)
APP = "def greet():\n    return 'hello'\n"
FILES = {"alpha": "print('alpha ok')\n", "beta": "print('beta ok')\n"}

needs_sandbox = pytest.mark.skipif(
    sandbox_unavailable_reason() is not None and not os.environ.get("CI"),
    reason=f"sandboxed commands unavailable: {sandbox_unavailable_reason()}",
)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def system_of(body: dict[str, Any]) -> str:
    messages = body.get("messages", [])
    return text_of(body.get("system")) or text_of(messages[0].get("content"))


def steps_taken(body: dict[str, Any]) -> int:
    """The loop's turns so far: one assistant message per earlier step (both protocols)."""
    return sum(1 for m in body.get("messages", []) if m.get("role") == "assistant")


def judgement(body: dict[str, Any]) -> str | None:
    """The judge prefers beta's code; None for any other request."""
    if "judge of a tournament" not in system_of(body):
        return None
    a, _b = PAIR.search(text_of(body["messages"][-1]["content"])).groups()
    return json.dumps({"winner": "A" if "beta.py" in a else "B", "reason": "beta tests pass"})


def work(body: dict[str, Any]) -> list[dict[str, Any]]:
    """A candidate writes `<agent>.py`, runs it and finishes; the synthesis (on beta's code)
    brings in alpha's file, runs both and finishes."""
    system = system_of(body)
    if "judge of a tournament" in system:
        return []
    if "You merge the finalists" in system:
        plan = [
            call("write_file", path="alpha.py", content=FILES["alpha"]),
            call("run_command", command="python3 alpha.py && python3 beta.py"),
            call("finish", summary="Merged alpha.py into beta's code"),
        ]
    else:
        agent = AGENT.search(system).group(1)
        plan = [
            call("write_file", path=f"{agent}.py", content=FILES[agent]),
            call("run_command", command=f"python3 {agent}.py"),
            call("finish", summary=f"{agent} adds {agent}.py"),
        ]
    step = steps_taken(body)
    return [plan[step]] if step < len(plan) else []


def scripted(fake_openai: FakeOpenAIServer, fake_anthropic: FakeAnthropicServer) -> None:
    reply = Reply(text=lambda body: judgement(body) or "", tool_calls=work)
    fake_openai.default_reply = reply
    fake_anthropic.default_reply = reply


async def code_project(client: httpx.AsyncClient, tenant: Tenant) -> int:
    project = await create_project(client, tenant, name="greeter")
    assert (await put_file(client, tenant, project["id"], "app.py", APP)).status_code < 300
    return int(project["id"])


async def file_on(
    client: httpx.AsyncClient, tenant: Tenant, pid: int, path: str, ref: str
) -> str | None:
    url = org_url(tenant, f"/projects/{pid}/files/{path}")
    response = await client.get(url, params={"ref": ref}, headers=tenant.headers)
    if response.status_code == 404:
        return None
    assert response.status_code == 200, response.text
    return str(response.json()["content"])


def worktrees_left(settings: Settings, tenant: Tenant, pid: int) -> list[str]:
    folder = settings.data_dir / "worktrees" / str(tenant.org_id) / str(pid)
    return sorted(p.name for p in folder.iterdir()) if folder.is_dir() else []


@needs_sandbox
async def test_code_session_judges_diffs_and_merges_the_winners_code(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
):
    scripted(fake_openai, fake_anthropic)
    pid = await code_project(client, tenant)
    started = await start(
        client, tenant, pid, task="code", agents=["alpha", "beta"], max_iterations=1
    )
    sid = started["id"]
    done = await wait_job(client, tenant, sid)
    assert done["status"] == "succeeded", done
    result = done["result"]
    assert result["best_source"] == "synthesis" and result["iterations_completed"] == 1
    assert result["branch"] == f"genway/promode-{sid}" and len(result["commit"]) == 40
    assert "Merged alpha.py into beta's code" in result["best"]
    assert "alpha ok\nbeta ok" in result["best"]  # the synthesis's test output

    view = await detail(client, tenant, pid, sid)
    assert view["branch"] == result["branch"] and view["commit"] == result["commit"]
    candidates = {c["agent"]: c for c in view["iterations"][0]["candidates"]}
    for agent, candidate in candidates.items():
        assert candidate["status"] == "succeeded", candidate
        assert candidate["branch"] == f"genway/promode-{sid}-{candidate['job_id']}"
        assert len(candidate["commit"]) == 40
        assert candidate["text"].startswith(f"Summary:\n{agent} adds {agent}.py")
        assert (
            await file_on(client, tenant, pid, f"{agent}.py", candidate["branch"]) == (FILES[agent])
        )
        other = "beta" if agent == "alpha" else "alpha"
        assert await file_on(client, tenant, pid, f"{other}.py", candidate["branch"]) is None
    bracket = view["iterations"][0]["bracket"]
    assert bracket["champion"] == candidates["beta"]["key"]
    assert bracket["finalists"] == [candidates["beta"]["key"], candidates["alpha"]["key"]]

    judged = [r for r in fake_openai.requests if "judge of a tournament" in system_of(r.body)]
    assert len(judged) == 1 and "tools" not in judged[0].body
    shown = text_of(judged[0].messages[-1]["content"])
    for agent, content in FILES.items():
        assert f"+++ b/{agent}.py" in shown and f"+{content.strip()}" in shown
        assert f"$ python3 {agent}.py" in shown and f"{agent} ok" in shown
    assert "change to the project's code" in shown

    merge = next(r for r in fake_anthropic.requests if "You merge" in system_of(r.body))
    told = text_of(merge.messages[0]["content"])
    assert f"branch {candidates['beta']['branch']}" in told and "+print('alpha ok')" in told
    assert "beta tests pass" in told

    final = result["branch"]
    for path, content in (
        ("app.py", APP),
        ("alpha.py", FILES["alpha"]),
        ("beta.py", FILES["beta"]),
    ):
        assert await file_on(client, tenant, pid, path, final) == content
    assert await file_on(client, tenant, pid, "alpha.py", "main") is None
    assert worktrees_left(settings, tenant, pid) == []

    assert view["usage"]["calls"] == 3 + 3 + 1 + 3 == fake_openai.calls + fake_anthropic.calls
    events = await job_events(client, tenant, sid)
    assert [t["tool_name"] for t in outputs(events, "tool")] == [
        "write_file",
        "run_command",
        "finish",
    ]
    assert outputs(events, "synthesis")[0]["from"] == bracket["finalists"]
    child = await job_events(client, tenant, candidates["alpha"]["job_id"])
    assert [t["tool_name"] for t in outputs(child, "tool")] == [
        "write_file",
        "run_command",
        "finish",
    ]


async def test_models_without_tools_fall_back_to_text_answers(
    client: httpx.AsyncClient,
    tenant: Tenant,
    settings: Settings,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
):
    def text(body: dict[str, Any]) -> str:
        if (verdict := judgement(body)) is not None:
            return verdict
        if "combine the best answers" in system_of(body):
            return "merged in text"
        return f"{AGENT.search(system_of(body)).group(1)} answers in text"

    fake_openai.default_reply = fake_anthropic.default_reply = Reply(text=text)
    fake_openai.tools_supported = fake_anthropic.tools_supported = False
    pid = await code_project(client, tenant)
    started = await start(
        client, tenant, pid, task="code", agents=["alpha", "beta"], max_iterations=1
    )
    done = await wait_job(client, tenant, started["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["best"] == "merged in text"
    assert done["result"]["branch"] is None and done["result"]["commit"] is None

    view = await detail(client, tenant, pid, started["id"])
    texts = {c["agent"]: c["text"] for c in view["iterations"][0]["candidates"]}
    assert texts == {"alpha": "alpha answers in text", "beta": "beta answers in text"}
    assert all(c["branch"] is None for c in view["iterations"][0]["candidates"])
    refused = [r for r in fake_openai.requests if "tools" in r.body]
    assert len(refused) == 2  # each candidate tried tools once, then answered in text
    child = await job_events(client, tenant, view["iterations"][0]["candidates"][0]["job_id"])
    assert outputs(child, "fallback") == [
        {"name": "fallback", "reason": "the model does not support tool calls"}
    ]
    assert worktrees_left(settings, tenant, pid) == []


async def test_cancelling_a_code_session_removes_its_worktrees(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, fake_openai: FakeOpenAIServer
):
    fake_openai.hang(times=None)
    pid = await code_project(client, tenant)
    started = await start(client, tenant, pid, task="code", agents=["solo"], candidates=2)
    for _ in range(200):
        if len(worktrees_left(settings, tenant, pid)) == 4:  # two checkouts, two head files
            break
        await asyncio.sleep(0.05)
    assert len(worktrees_left(settings, tenant, pid)) == 4
    cancelled = await client.post(
        org_url(tenant, f"/projects/{pid}/sessions/{started['id']}/cancel"),
        headers=tenant.headers,
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await wait_job(client, tenant, started["id"]))["status"] == "cancelled"
    for _ in range(100):
        if not worktrees_left(settings, tenant, pid):
            break
        await asyncio.sleep(0.05)
    assert worktrees_left(settings, tenant, pid) == []


@needs_sandbox
async def test_improvements_build_on_the_incumbents_code(
    client: httpx.AsyncClient,
    tenant: Tenant,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
):
    seen: list[str] = []

    def improving(body: dict[str, Any]) -> list[dict[str, Any]]:
        request = next(m for m in body["messages"] if m.get("role") == "user")
        if "current best solution" not in text_of(request["content"]):
            return work(body)
        if steps_taken(body) == 1:
            seen.append(str(body["messages"][-1]["content"]))  # what read_file answered
        plan = [
            call("read_file", path="alpha.py"),
            call("write_file", path="gamma.py", content="print('gamma ok')\n"),
            call("finish", summary="gamma improves on the merged code"),
        ]
        return [plan[steps_taken(body)]]

    def verdict(body: dict[str, Any]) -> str:
        if "judge of a tournament" not in system_of(body):
            return ""
        a, _b = PAIR.search(text_of(body["messages"][-1]["content"])).groups()
        if "gamma.py" in text_of(body["messages"][-1]["content"]):
            return json.dumps({"winner": "A" if "gamma.py" in a else "B", "reason": "gamma"})
        return judgement(body) or ""

    fake_openai.default_reply = fake_anthropic.default_reply = Reply(
        text=verdict, tool_calls=improving
    )
    pid = await code_project(client, tenant)
    started = await start(
        client, tenant, pid, task="code", agents=["alpha", "beta"], max_iterations=2
    )
    done = await wait_job(client, tenant, started["id"])
    assert done["status"] == "succeeded", done
    view = await detail(client, tenant, pid, started["id"])
    first, second = view["iterations"]
    improvement = second["candidates"][0]
    assert second["mode"] == "improve" and len(second["candidates"]) == 1
    assert second["bracket"]["champion"] == improvement["key"]
    assert "alpha ok" in seen[0]  # its checkout started from the first synthesis's code
    for path in ("alpha.py", "beta.py", "gamma.py"):
        assert await file_on(client, tenant, pid, path, improvement["branch"]) is not None
    # The second synthesis changed nothing: the final code is the improvement's commit, on the
    # session's branch (moved there from the first synthesis's commit).
    assert done["result"]["commit"] == improvement["commit"] != first["synthesis"]["commit"]
    assert done["result"]["branch"] == f"genway/promode-{started['id']}"
    assert await file_on(client, tenant, pid, "gamma.py", done["result"]["branch"]) is not None
    assert "gamma.py" in done["result"]["best"] and "alpha.py" in done["result"]["best"]

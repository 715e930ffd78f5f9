"""Pro Mode research sessions (text answers) run by the embedded worker against scripted fake
vendors: the bracket and synthesis that scripted judge replies imply, the best result when time
runs out, cancellation of the instances, and isolation between organizations."""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.agent_support import create_project, job_events, org_url, outputs, wait_job
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer, Reply, text_of
from tests.support import Tenant

SCORES = {"alpha": 1, "beta": 4, "gamma": 3, "delta": 2}
IMPROVED = {"alpha": 11, "beta": 14, "gamma": 9}
AGENT = re.compile(r"You are the '(\w+)' agent")
SCORE = re.compile(r"score=(\d+)")
PAIR = re.compile(r"Candidate A:\n(.*?)\n\nCandidate B:\n(.*)", re.DOTALL)


@dataclass
class Script:
    """Deterministic replies, whatever order the parallel calls arrive in: an answer's score
    depends on its agent, and the judge prefers the higher score."""

    syntheses: int = 0
    judged: list[tuple[int, int]] = field(default_factory=list)

    def __call__(self, body: dict[str, Any]) -> str:
        messages = body.get("messages", [])
        system = text_of(body.get("system")) or text_of(messages[0].get("content"))
        user = text_of(messages[-1].get("content"))
        if "judge of a tournament" in system:
            a, b = (int(SCORE.search(part).group(1)) for part in PAIR.search(user).groups())
            self.judged.append((a, b))
            winner = "A" if a >= b else "B"
            return json.dumps({"winner": winner, "reason": f"score {max(a, b)} beats {min(a, b)}"})
        if "combine the best answers" in system:
            self.syntheses += 1
            return f"synthesis {self.syntheses} score={self.syntheses * 10}"
        agent = AGENT.search(system).group(1)
        if "You improve an existing answer" in system:
            return f"CRITIQUE:\nneeds more\n\nIMPROVED ANSWER:\n{agent} v2 score={IMPROVED[agent]}"
        return f"{agent} v1 score={SCORES[agent]}"


def scripted(fake_openai: FakeOpenAIServer, fake_anthropic: FakeAnthropicServer) -> Script:
    script = Script()
    fake_openai.default_reply = Reply(text=script)
    fake_anthropic.default_reply = Reply(text=script)
    return script


async def start(
    client: httpx.AsyncClient, tenant: Tenant, project_id: int, **body: Any
) -> dict[str, Any]:
    body.setdefault("prompt", "Build a calculator")
    body.setdefault(
        "task", "research"
    )  # one text call per step (code sessions: test_code_sessions)
    body.setdefault("agents", list(SCORES))
    response = await client.post(
        org_url(tenant, f"/projects/{project_id}/pro-mode"), json=body, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def detail(
    client: httpx.AsyncClient, tenant: Tenant, project_id: int, session_id: int
) -> dict[str, Any]:
    url = org_url(tenant, f"/projects/{project_id}/sessions/{session_id}")
    response = await client.get(url, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def test_four_candidates_two_iterations(
    client: httpx.AsyncClient,
    tenant: Tenant,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
):
    script = scripted(fake_openai, fake_anthropic)
    project = await create_project(client, tenant, name="calc")
    pid = project["id"]
    started = await start(client, tenant, pid, max_iterations=2, timeout_minutes=5)
    assert started["status"] == "queued" and started["candidates"] == 4
    assert started["events_url"] == org_url(tenant, f"/jobs/{started['id']}/events")
    session_job = await wait_job(client, tenant, started["id"])
    assert session_job["status"] == "succeeded", session_job

    view = await detail(client, tenant, pid, started["id"])
    assert view["iterations_completed"] == 2 and view["timed_out"] is False
    assert view["best"] == "synthesis 2 score=20"
    first, second = view["iterations"]
    key = {c["agent"]: c["key"] for c in first["candidates"]}
    assert [c["text"] for c in first["candidates"]] == [
        f"{a} v1 score={s}" for a, s in SCORES.items()
    ]
    assert all(c["status"] == "succeeded" for c in first["candidates"])
    rounds = [[(m["a"], m["b"], m["winner"]) for m in r] for r in first["bracket"]["rounds"]]
    assert rounds == [
        [(key["alpha"], key["beta"], key["beta"]), (key["gamma"], key["delta"], key["gamma"])],
        [(key["beta"], key["gamma"], key["beta"])],
    ]
    assert first["bracket"]["champion"] == key["beta"]
    assert first["bracket"]["finalists"] == [key["beta"], key["gamma"]]
    assert len(first["judgements"]) == 3 and first["judgements"][2]["reason"] == "score 4 beats 3"
    assert first["synthesis"]["from"] == [key["beta"], key["gamma"]]
    assert first["synthesis"]["text"] == "synthesis 1 score=10"
    assert first["best"] == {"key": "synthesis-1", "source": "synthesis"}

    assert second["mode"] == "improve" and len(second["candidates"]) == 3
    better = {c["agent"]: c["key"] for c in second["candidates"]}
    assert all(c["critique"] == "needs more" for c in second["candidates"])
    rounds = [[(m["a"], m["b"], m["winner"]) for m in r] for r in second["bracket"]["rounds"]]
    assert rounds == [
        [
            ("incumbent", better["alpha"], better["alpha"]),
            (better["beta"], better["gamma"], better["beta"]),
        ],
        [(better["alpha"], better["beta"], better["beta"])],
    ]
    assert second["synthesis"]["from"] == [better["beta"], better["alpha"]]
    assert second["synthesis"]["text"] == "synthesis 2 score=20"
    improve_request = next(
        r for r in fake_openai.requests if "You improve" in text_of(r.messages[0]["content"])
    )
    assert "synthesis 1 score=10" in text_of(improve_request.messages[-1]["content"])
    assert "score 4 beats 3" in text_of(improve_request.messages[-1]["content"])

    assert view["usage"]["calls"] == 15 == fake_openai.calls + fake_anthropic.calls
    assert script.syntheses == 2 and len(script.judged) == 6
    assert view["usage"]["by_model"]["anthropic:claude-sonnet-4-6"]["calls"] == 2

    events = await job_events(client, tenant, started["id"])
    steps = [
        e["data"]["name"] for e in events if e["type"] == "output" and e["data"]["name"] != "delta"
    ]
    assert steps[0] == "session_started" and steps[1] == "iteration_started"
    assert steps.index("bracket") > max(i for i, s in enumerate(steps[:12]) if s == "match")
    assert steps.count("match") == 6 and steps.count("candidate") == 7
    assert steps[-2:] == ["best", "iteration_completed"]
    assert (
        "".join(d["text"] for d in outputs(events, "delta"))
        == "synthesis 1 score=10synthesis 2 score=20"
    )
    assert events[-1]["data"]["status"] == "succeeded"

    children = await client.get(
        org_url(tenant, "/jobs"), params={"kind": "promode.agent"}, headers=tenant.headers
    )
    instances = children.json()["items"]
    assert len(instances) == 7
    assert {(j["parent_id"], j["status"], j["project_id"]) for j in instances} == {
        (started["id"], "succeeded", pid)
    }
    listed = await client.get(org_url(tenant, f"/projects/{pid}/sessions"), headers=tenant.headers)
    assert [s["id"] for s in listed.json()["items"]] == [started["id"]]
    usage = (await client.get(org_url(tenant, "/usage"), headers=tenant.headers)).json()
    assert usage["totals"]["agent_runs"] == 1
    assert usage["totals"]["tokens_out:openai:gpt-4o"] > 0


async def test_timeout_returns_the_best_result_so_far(
    client: httpx.AsyncClient,
    tenant: Tenant,
    fake_openai: FakeOpenAIServer,
    fake_anthropic: FakeAnthropicServer,
):
    scripted(fake_openai, fake_anthropic)
    fake_anthropic.hang(times=None)  # the synthesis never answers
    project = await create_project(client, tenant)
    started = await start(client, tenant, project["id"], max_iterations=3, timeout_minutes=0.03)
    done = await wait_job(client, tenant, started["id"])
    assert done["status"] == "succeeded", done
    assert done["result"]["timed_out"] is True and done["result"]["iterations_completed"] == 0
    assert done["result"]["best"] == "beta v1 score=4"
    assert done["result"]["best_source"] == "champion"
    view = await detail(client, tenant, project["id"], started["id"])
    assert view["timed_out"] is True and view["best"] == "beta v1 score=4"
    assert view["iterations"][0]["bracket"]["finalists"][0] == done["result"]["best_key"]
    assert view["iterations"][0]["synthesis"] is None
    events = await job_events(client, tenant, started["id"])
    assert outputs(events, "timeout")[0]["best"] == done["result"]["best_key"]


async def test_cancelling_a_session_cancels_its_instances(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, fake_openai: FakeOpenAIServer
):
    fake_openai.hang(times=None)
    project = await create_project(client, tenant)
    pid = project["id"]
    started = await start(client, tenant, pid, agents=["solo"], candidates=3)
    for _ in range(200):
        view = await detail(client, tenant, pid, started["id"])
        if view["iterations"] and len(view["iterations"][0]["candidates"]) == 3:
            break
    assert {c["status"] for c in view["iterations"][0]["candidates"]} == {"running"}

    attacker = other_tenant.headers
    foreign = f"/v1/organizations/{other_tenant.org_id}/projects/{pid}"
    for method, path in (
        ("GET", f"{foreign}/sessions"),
        ("GET", f"{foreign}/sessions/{started['id']}"),
        ("POST", f"{foreign}/sessions/{started['id']}/cancel"),
        ("POST", f"{foreign}/pro-mode"),
        (
            "GET",
            f"/v1/organizations/{other_tenant.org_id}/jobs/{view['iterations'][0]['candidates'][0]['job_id']}",
        ),
    ):
        response = await client.request(method, path, json={"prompt": "x"}, headers=attacker)
        assert response.status_code == 404, (method, path, response.text)

    cancelled = await client.post(
        org_url(tenant, f"/projects/{pid}/sessions/{started['id']}/cancel"), headers=tenant.headers
    )
    assert cancelled.status_code == 200, cancelled.text
    assert (await wait_job(client, tenant, started["id"]))["status"] == "cancelled"
    for candidate in (await detail(client, tenant, pid, started["id"]))["iterations"][0][
        "candidates"
    ]:
        child = await wait_job(client, tenant, candidate["job_id"])
        assert child["status"] == "cancelled" and child["parent_id"] == started["id"]


async def test_pro_mode_validation(client: httpx.AsyncClient, tenant: Tenant):
    project = await create_project(client, tenant)
    url = org_url(tenant, f"/projects/{project['id']}/pro-mode")
    for bad in (
        {},
        {"prompt": "x", "agents": []},
        {"prompt": "x", "max_iterations": 0},
        {"prompt": "x", "max_iterations": 11},
        {"prompt": "x", "timeout_minutes": 0},
        {"prompt": "x", "candidates": 1},
        {"prompt": "x", "candidates": 17},
        {"prompt": "x", "agents": ["../../etc"]},
        {"prompt": "x", "agents": ["a"] * 17},
        {"prompt": "x", "tournament": "swiss"},
    ):
        response = await client.post(url, json=bad, headers=tenant.headers)
        assert response.status_code == 422, (bad, response.text)
    missing = await client.post(
        org_url(tenant, "/projects/999/pro-mode"), json={"prompt": "x"}, headers=tenant.headers
    )
    assert missing.status_code == 404

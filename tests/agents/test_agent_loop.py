"""The code agent's tool loop, end to end: the embedded worker drives the fake vendors' native
tool calling against a project's git repository, with commands in the bubblewrap sandbox."""

from __future__ import annotations

import asyncio
import os
from typing import Any

import httpx
import pytest

from genway.sandbox import sandbox_unavailable_reason
from tests.agent_support import create_project, job_events, org_url, outputs, put_file, wait_job
from tests.fakes.anthropic_server import FakeAnthropicServer
from tests.fakes.openai_server import FakeOpenAIServer
from tests.support import Tenant

BUGGY = "def add(a, b):\n    return a - b\n"
TEST = "from calc import add\n\nassert add(2, 3) == 5, f'add(2, 3) == {add(2, 3)}'\nprint('ok')\n"

needs_sandbox = pytest.mark.skipif(
    sandbox_unavailable_reason() is not None and not os.environ.get("CI"),
    reason=f"sandboxed commands unavailable: {sandbox_unavailable_reason()}",
)


def call(name: str, **arguments: Any) -> dict[str, Any]:
    return {"name": name, "arguments": arguments}


def tool_results(body: dict[str, Any]) -> list[str]:
    """The tool results the model was sent, in order (OpenAI's `tool` messages)."""
    return [m["content"] for m in body.get("messages", []) if m.get("role") == "tool"]


async def start(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    response = await client.post(org_url(tenant, "/agent/run"), json=body, headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def run_of(client: httpx.AsyncClient, tenant: Tenant, run_id: int) -> dict[str, Any]:
    response = await client.get(org_url(tenant, f"/agent/run/{run_id}"), headers=tenant.headers)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def finished(client: httpx.AsyncClient, tenant: Tenant, run_id: int) -> dict[str, Any]:
    await wait_job(client, tenant, run_id)
    return await run_of(client, tenant, run_id)


async def until_status(
    client: httpx.AsyncClient, tenant: Tenant, run_id: int, status: str
) -> dict[str, Any]:
    """Poll the run until its Codegen status is `status` (at most 30 s)."""
    current: dict[str, Any] = {}
    for _ in range(600):
        current = await run_of(client, tenant, run_id)
        if current["status"] == status:
            return current
        await asyncio.sleep(0.05)
    raise AssertionError(f"run {run_id} never became {status}: {current}")


async def calc_project(client: httpx.AsyncClient, tenant: Tenant, **fields: Any) -> int:
    project = await create_project(client, tenant, name="calc", **fields)
    await put_file(client, tenant, project["id"], "calc.py", BUGGY)
    await put_file(client, tenant, project["id"], "test_calc.py", TEST)
    return int(project["id"])


async def file_on(
    client: httpx.AsyncClient, tenant: Tenant, pid: int, path: str, ref: str | None = None
) -> httpx.Response:
    params = {"ref": ref} if ref else {}
    url = org_url(tenant, f"/projects/{pid}/files/{path}")
    return await client.get(url, params=params, headers=tenant.headers)


@needs_sandbox
async def test_run_reads_edits_tests_fixes_and_commits_on_its_branch(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant)
    seen: dict[str, str] = {}

    def after_failure(body: dict[str, Any]) -> list[dict[str, Any]]:
        seen["failed_test"] = tool_results(body)[-1]
        return [call("edit_file", path="calc.py", old_text="a - b", new_text="a + b")]

    def after_pass(body: dict[str, Any]) -> list[dict[str, Any]]:
        seen["passed_test"] = tool_results(body)[-1]
        return [call("finish", summary="Fixed add: it subtracted.")]

    fake_openai.reply("Let me look at the code.", tool_calls=[call("read_file", path="calc.py")])
    fake_openai.reply("", tool_calls=[call("run_command", command="python3 test_calc.py")])
    fake_openai.reply("The test fails; fixing.", tool_calls=after_failure)
    fake_openai.reply("", tool_calls=[call("run_command", command="python3 test_calc.py")])
    fake_openai.reply("", tool_calls=after_pass)

    run = await start(client, tenant, prompt="add() is wrong, fix it", project_id=pid)
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "COMPLETE", done
    assert done["result"] == "Fixed add: it subtracted."
    branch = f"genway/run-{run['id']}"
    assert done["branch"] == branch and len(done["commit"]) == 40
    assert done["diff_stat"]["files_changed"] == 1
    assert done["diff_stat"]["files"][0]["path"] == "calc.py"

    assert "exit code 1" in seen["failed_test"] and "add(2, 3) == -1" in seen["failed_test"]
    assert "exit code 0" in seen["passed_test"] and "ok" in seen["passed_test"]
    first = fake_openai.requests[0].body
    assert {t["function"]["name"] for t in first["tools"]} >= {
        "list_files",
        "read_file",
        "search",
        "write_file",
        "edit_file",
        "run_command",
        "finish",
    }
    read = tool_results(fake_openai.requests[1].body)[0]
    assert "return a - b" in read and "1\tdef add" in read.replace("     ", "")

    fixed = await file_on(client, tenant, pid, "calc.py", ref=branch)
    assert fixed.status_code == 200 and "a + b" in fixed.json()["content"]
    main = await file_on(client, tenant, pid, "calc.py")
    assert "a - b" in main.json()["content"]  # the default branch is untouched
    diff = await client.get(
        org_url(tenant, f"/projects/{pid}/diff"),
        params={"from": "main", "to": branch},
        headers=tenant.headers,
    )
    assert diff.status_code == 200 and "+    return a + b" in diff.json()["files"][0]["patch"]

    logs = (
        await client.get(org_url(tenant, f"/agent/run/{run['id']}/logs"), headers=tenant.headers)
    ).json()
    actions = [entry for entry in logs["logs"] if entry["tool_name"] in {"read_file", "edit_file"}]
    assert [a["tool_name"] for a in actions] == ["read_file", "edit_file"]
    assert actions[0]["tool_input"] == {"path": "calc.py"}
    assert "return a - b" in actions[0]["tool_output"]["output"]
    assert actions[0]["thought"] == "Let me look at the code."
    events = await job_events(client, tenant, run["id"])
    streamed = "".join(e["data"]["text"] for e in events if e["type"] == "log")
    assert "add(2, 3) == -1" in streamed  # command output streamed to the run's log
    usage = (await client.get(org_url(tenant, f"/jobs/{run['id']}"), headers=tenant.headers)).json()
    assert usage["result"]["usage"]["calls"] == 5 and usage["result"]["tool_calls"] == 5


async def test_prose_answer_needs_no_tools_and_is_the_result(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant)
    fake_openai.reply("add() subtracts; it should return a + b.")
    run = await start(client, tenant, prompt="Why does add fail?", project_id=pid)
    done = await finished(client, tenant, run["id"])
    assert (
        done["status"] == "COMPLETE"
        and done["result"] == "add() subtracts; it should return a + b."
    )
    assert done["commit"] is None and done["diff_stat"] is None
    no_project = await start(client, tenant, prompt="Explain recursion")
    answered = await finished(client, tenant, no_project["id"])
    assert answered["status"] == "COMPLETE" and answered["result"].startswith("echo: ")


async def test_anthropic_tool_use_drives_the_loop(
    client: httpx.AsyncClient, tenant: Tenant, fake_anthropic: FakeAnthropicServer
):
    pid = await calc_project(client, tenant)
    fake_anthropic.reply("", tool_calls=[call("write_file", path="notes/todo.md", content="- x\n")])
    fake_anthropic.reply("", tool_calls=[call("finish", summary="Wrote the todo list.")])
    run = await start(
        client,
        tenant,
        prompt="Write a todo list",
        project_id=pid,
        model="anthropic:claude-sonnet-4-6",
    )
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "COMPLETE", done
    written = await file_on(client, tenant, pid, "notes/todo.md", ref=done["branch"])
    assert written.json()["content"] == "- x\n"
    second = fake_anthropic.requests[-1].body["messages"]
    assert second[-1]["role"] == "user" and second[-1]["content"][0]["type"] == "tool_result"


async def test_plan_confirm_with_edits_then_carry_out(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant)
    fake_openai.reply("", tool_calls=[call("submit_plan", plan="1. Fix add in calc.py")])
    run = await start(client, tenant, prompt="Fix add", project_id=pid, plan_first=True)
    current = await until_status(client, tenant, run["id"], "PLAN_READY")
    assert current["plan"] == "1. Fix add in calc.py"
    plan_tools = {t["function"]["name"] for t in fake_openai.requests[0].body["tools"]}
    assert "write_file" not in plan_tools and "submit_plan" in plan_tools
    calls_before = fake_openai.calls

    fake_openai.reply(
        "", tool_calls=[call("edit_file", path="calc.py", old_text="-", new_text="+")]
    )
    fake_openai.reply("", tool_calls=[call("finish", summary="Done as planned.")])
    url = org_url(tenant, f"/agent/run/{run['id']}/confirm")
    confirmed = await client.post(
        url, json={"plan": "1. Fix add\n2. Nothing else"}, headers=tenant.headers
    )
    assert confirmed.status_code == 200 and confirmed.json()["plan"].endswith("Nothing else")
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "COMPLETE" and done["result"] == "Done as planned."
    carried = fake_openai.requests[calls_before].body["messages"]
    assert "2. Nothing else" in carried[-1]["content"]
    fixed = await file_on(client, tenant, pid, "calc.py", ref=done["branch"])
    assert "a + b" in fixed.json()["content"]
    again = await client.post(url, json={}, headers=tenant.headers)
    assert again.status_code == 409


async def test_auto_confirm_projects_and_resume_on_the_same_branch(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant, settings={"auto_confirm_plans": True})
    fake_openai.reply("", tool_calls=[call("submit_plan", plan="Write a.txt")])
    fake_openai.reply("", tool_calls=[call("write_file", path="a.txt", content="A\n")])
    fake_openai.reply("", tool_calls=[call("finish", summary="a.txt written")])
    run = await start(client, tenant, prompt="Write a", project_id=pid, plan_first=True)
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "COMPLETE" and done["plan"] == "Write a.txt"

    def sees_a(body: dict[str, Any]) -> list[dict[str, Any]]:
        return [call("read_file", path="a.txt")]

    fake_openai.reply("", tool_calls=sees_a)
    fake_openai.reply("", tool_calls=[call("write_file", path="b.txt", content="B\n")])
    fake_openai.reply("", tool_calls=[call("finish", summary="b.txt written")])
    resumed = await client.post(
        org_url(tenant, "/agent/run/resume"),
        json={"agent_run_id": run["id"], "prompt": "Now write b"},
        headers=tenant.headers,
    )
    assert resumed.status_code == 200, resumed.text
    second = await finished(client, tenant, resumed.json()["id"])
    assert second["status"] == "COMPLETE" and second["branch"] == done["branch"]
    assert "A" in tool_results(fake_openai.requests[-2].body)[0]
    for path in ("a.txt", "b.txt"):
        assert (await file_on(client, tenant, pid, path, ref=done["branch"])).status_code == 200


async def test_models_without_tools_fall_back_to_a_structured_answer_with_one_repair(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant)
    fake_openai.tools_supported = False
    fake_openai.reply('```json\n{"summary": "fix", "edits": [{"path": "calc.py"}]}\n```')
    fake_openai.reply(
        '```json\n{"summary": "Fix add", "edits": [{"path": "calc.py", "content": '
        '"def add(a, b):\\n    return a + b\\n"}]}\n```'
    )
    run = await start(client, tenant, prompt="Fix add", project_id=pid)
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "COMPLETE", done
    repair = fake_openai.requests[-1].body["messages"][-1]["content"]
    assert "cannot be used" in repair and "no content" in repair
    fixed = await file_on(client, tenant, pid, "calc.py", ref=done["branch"])
    assert "a + b" in fixed.json()["content"]


@needs_sandbox
async def test_path_attacks_through_every_tool_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer, tmp_path
):
    host_file = tmp_path / "host-secret.txt"
    host_file.write_text("secret\n")
    pid = await calc_project(client, tenant)
    attacks = [
        call("read_file", path="../../../../etc/passwd"),
        call("read_file", path="/etc/passwd"),
        call("write_file", path="/tmp/evil.txt", content="x"),
        call("write_file", path="../escape.txt", content="x"),
        call("edit_file", path="../../calc.py", old_text="a", new_text="b"),
        call("list_files", path=".."),
        call("search", pattern="secret", path="../.."),
        call("read_file", path=".git/config"),
    ]
    fake_openai.reply("", tool_calls=attacks)
    fake_openai.reply("", tool_calls=[call("run_command", command=f"ln -s {host_file} link")])
    fake_openai.reply(
        "",
        tool_calls=[
            call("read_file", path="link"),
            call("write_file", path="link", content="overwritten\n"),
            call("run_command", command=f"cat {host_file}; echo x > {host_file}"),
        ],
    )
    fake_openai.reply("", tool_calls=[call("finish", summary="tried")])
    run = await start(client, tenant, prompt="Escape", project_id=pid)
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "COMPLETE", done
    results = tool_results(fake_openai.requests[1].body)
    assert len(results) == len(attacks)
    assert all(r.startswith("Error: ") for r in results), results
    last = tool_results(fake_openai.requests[3].body)[-3:]
    assert last[0].startswith("Error: ") and "outside" in last[0]  # read through the symlink
    assert "No such file" in last[2] and "secret\n" not in last[2]  # the host is not there
    assert host_file.read_text() == "secret\n"
    assert not os.path.exists("/tmp/evil.txt")


@needs_sandbox
async def test_cancel_stops_a_running_command(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant)
    fake_openai.reply("", tool_calls=[call("run_command", command="echo started; sleep 120")])
    run = await start(client, tenant, prompt="Wait", project_id=pid)
    for _ in range(600):
        listed = await client.get(
            org_url(tenant, f"/agent/run/{run['id']}/logs"), headers=tenant.headers
        )
        if "started" in listed.text:
            break
        await asyncio.sleep(0.05)
    cancel = await client.post(org_url(tenant, f"/jobs/{run['id']}/cancel"), headers=tenant.headers)
    assert cancel.status_code in (200, 202), cancel.text
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "CANCELLED"
    assert not any("sleep 120" in _cmdline(pid_) for pid_ in os.listdir("/proc") if pid_.isdigit())


def _cmdline(pid: str) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return handle.read().replace(b"\x00", b" ").decode(errors="replace")
    except OSError:
        return ""


async def test_step_limit_stops_the_run_and_keeps_its_work(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant)
    fake_openai.reply("", tool_calls=[call("write_file", path="w.txt", content="w\n")])
    fake_openai.default_reply.tool_calls = [call("list_files")]
    run = await start(client, tenant, prompt="Loop", project_id=pid, max_steps=3)
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "FAILED" and "3 steps" in done["summary"]
    assert fake_openai.calls == 3
    assert (await file_on(client, tenant, pid, "w.txt", ref=done["branch"])).status_code == 200
    events = await job_events(client, tenant, run["id"])
    assert len(outputs(events, "tool")) == 3


async def test_other_organizations_cannot_reach_a_run_its_plan_or_its_branch(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant)
    fake_openai.reply("", tool_calls=[call("submit_plan", plan="secret plan")])
    run = await start(client, tenant, prompt="Plan it", project_id=pid, plan_first=True)
    await until_status(client, tenant, run["id"], "PLAN_READY")
    theirs = other_tenant.headers
    for path in (f"/agent/run/{run['id']}", f"/agent/run/{run['id']}/logs"):
        denied = await client.get(org_url(other_tenant, path), headers=theirs)
        assert denied.status_code == 404 and "secret plan" not in denied.text
        crossed = await client.get(org_url(tenant, path), headers=theirs)
        assert crossed.status_code in (403, 404) and "secret plan" not in crossed.text
    confirm = await client.post(
        org_url(other_tenant, f"/agent/run/{run['id']}/confirm"), json={}, headers=theirs
    )
    assert confirm.status_code == 404
    branch = f"genway/run-{run['id']}"
    diff = await client.get(
        org_url(other_tenant, f"/projects/{pid}/diff"),
        params={"from": "main", "to": branch},
        headers=theirs,
    )
    assert diff.status_code == 404
    still = await run_of(client, tenant, run["id"])
    assert still["status"] == "PLAN_READY"


async def test_search_finds_lines_and_reports_bad_patterns(
    client: httpx.AsyncClient, tenant: Tenant, fake_openai: FakeOpenAIServer
):
    pid = await calc_project(client, tenant)
    fake_openai.reply(
        "",
        tool_calls=[
            call("search", pattern=r"return a [-+] b"),
            call("search", pattern="add", path="test_calc.py"),
            call("search", pattern="("),
            call("search", pattern="nowhere-to-be-found"),
        ],
    )
    fake_openai.reply("", tool_calls=[call("finish", summary="searched")])
    run = await start(client, tenant, prompt="Find add", project_id=pid)
    done = await finished(client, tenant, run["id"])
    assert done["status"] == "COMPLETE", done
    found, scoped, invalid, nothing = tool_results(fake_openai.requests[1].body)
    assert found == "calc.py:2:     return a - b"
    assert scoped.splitlines()[0] == "test_calc.py:1: from calc import add"
    assert all(line.startswith("test_calc.py:") for line in scoped.splitlines())
    assert invalid.startswith("Error: Invalid regular expression")
    assert nothing == "(no matches)"

"""Validations beyond the happy loop: a human's pull request checked by a GitHub App (check
runs, the default static check, retry), `/genway fix` comments, fix attempts running out, and
other organizations kept out."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import httpx
import pytest

from tests.agent_support import org_url, wait_job
from tests.fakes.github import FakeGitHub
from tests.fakes.openai_server import FakeOpenAIServer
from tests.github.conftest import CALC
from tests.github.test_pipeline import call, needs_sandbox, validations
from tests.support import Tenant

pytestmark = needs_sandbox
BROKEN = CALC + "\n\ndef total(items):\n    return sum(item.price for item in itemz)\n"
FAILING_TEST = (
    "import unittest\n\n\nclass Broken(unittest.TestCase):\n"
    "    def test_broken(self):\n        self.assertEqual(1, 2)\n"
)


async def pin(
    client: httpx.AsyncClient, tenant: Tenant, connection: dict[str, Any], **fields: Any
) -> dict[str, Any]:
    made = await client.put(
        org_url(tenant, "/github/connection"), json=connection, headers=tenant.headers
    )
    assert made.status_code == 200, made.text
    body = {"name": "demo", "github_repo": "octo/demo", **fields}
    created = await client.post(org_url(tenant, "/projects"), json=body, headers=tenant.headers)
    assert created.status_code == 201, created.text
    return dict(created.json())


async def test_a_humans_pull_request_with_an_app_check_run_lint_and_retry(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    github: FakeGitHub,
    octo: str,
) -> None:
    app_id, key = github.add_app("genway-ci")
    installation = github.install_app(app_id, "octo", repos=["demo"])
    connection = {"app_id": app_id, "installation_id": installation, "private_key": key}
    await pin(client, tenant, connection, test_commands=["python3 run_tests.py"])
    github.push_files("octo", "demo", "feature", {"calc.py": BROKEN}, author="alice")
    number = await github.open_pull("octo", "demo", head="feature", title="total()", user="alice")

    first = (await validations(client, tenant, 1))[0]
    assert first["status"] == "failed", first
    assert first["pr_number"] == number and first["agent_run_id"] is None
    lint = first["test_results"]["lint"]
    assert lint["tool"] == "ruff"
    assert [(f["path"], f["code"]) for f in lint["findings"]] == [("calc.py", "F821")]
    assert first["test_results"]["commands"][-1]["passed"] is True  # the tests themselves pass
    assert first["fix_run_id"] is None  # not Genway's pull request: nothing is sent back

    runs = github.check_runs("octo", "demo")
    assert len(runs) == 1 and runs[0].head_sha == first["head_sha"]
    assert runs[0].status == "completed" and runs[0].conclusion == "failure"
    assert "F821" in str(runs[0].output)

    retried = await client.post(f"/api/v1/validation/{first['id']}/retry", headers=tenant.headers)
    assert retried.status_code == 202, retried.text
    assert retried.json()["id"] != first["id"] and retried.json()["status"] == "queued"
    second = (await validations(client, tenant, 2))[-1]
    assert second["status"] == "failed" and second["head_sha"] == first["head_sha"]
    legacy = await client.get(f"/api/v1/validation/{second['id']}", headers=tenant.headers)
    assert legacy.status_code == 200 and legacy.json()["status"] == "failed"

    # Another organization sees none of it.
    for path in (f"/api/v1/validation/{first['id']}",):
        assert (await client.get(path, headers=other_tenant.headers)).status_code == 404
        retry = await client.post(f"{path}/retry", headers=other_tenant.headers)
        assert retry.status_code == 404
    for path in ("/validations", f"/validations/{first['id']}"):
        theirs = await client.get(org_url(tenant, path), headers=other_tenant.headers)
        assert theirs.status_code in (403, 404) and first["head_sha"] not in theirs.text
    own = await client.get(org_url(other_tenant, "/validations"), headers=other_tenant.headers)
    assert own.json()["total"] == 0
    mine_by_id = org_url(other_tenant, f"/validations/{first['id']}")
    assert (await client.get(mine_by_id, headers=other_tenant.headers)).status_code == 404
    assert github.schema_violations == []


async def test_a_genway_fix_comment_starts_a_run_on_the_branch(
    client: httpx.AsyncClient,
    tenant: Tenant,
    github: FakeGitHub,
    octo: str,
    fake_openai: FakeOpenAIServer,
) -> None:
    project = await pin(client, tenant, {"token": octo}, test_commands=["python3 run_tests.py"])
    fake_openai.reply("", tool_calls=[call("write_file", path="NOTES.md", content="notes\n")])
    fake_openai.reply("", tool_calls=[call("finish", summary="Add notes")])
    started = await client.post(
        org_url(tenant, "/agent/run"),
        json={"prompt": "Write notes", "project_id": project["id"]},
        headers=tenant.headers,
    )
    run = await wait_job(client, tenant, started.json()["id"])
    number = run["result"]["pull_request"]["number"]
    await validations(client, tenant, 1)

    await github.comment("octo", "demo", number, "/genway fix it all", user="alice")
    refused = await github.wait_for_delivery(
        "issue_comment", predicate=lambda d: d.payload["comment"]["user"]["login"] == "alice"
    )
    assert refused.status == 200 and "fix_refused_untrusted_author" in refused.response_body

    fake_openai.reply(
        "", tool_calls=[call("edit_file", path="NOTES.md", old_text="notes", new_text="Notes.")]
    )
    fake_openai.reply("", tool_calls=[call("finish", summary="Capitalised")])
    await github.comment("octo", "demo", number, "/genway fix capitalise the notes", user="octo")
    accepted = await github.wait_for_delivery(
        "issue_comment", predicate=lambda d: d.payload["comment"]["user"]["login"] == "octo"
    )
    assert accepted.status == 202, accepted.response_body
    job_id = int(json.loads(accepted.response_body)["job_id"])
    fix = await wait_job(client, tenant, job_id)
    assert fix["status"] == "succeeded", fix
    assert fix["input"]["branch"] == run["result"]["branch"]
    assert "capitalise the notes" in fix["input"]["prompt"]
    assert github.read_file("octo", "demo", run["result"]["branch"], "NOTES.md") == "Notes.\n"
    await validations(client, tenant, 2)  # the push was validated again
    pulls = await client.get(
        org_url(tenant, f"/projects/{project['id']}/pulls"), headers=tenant.headers
    )
    assert pulls.json()["items"][0]["fix_attempts"] == 0  # asked for, not counted


async def test_when_fix_attempts_run_out_the_admins_are_told(
    client: httpx.AsyncClient,
    tenant: Tenant,
    github: FakeGitHub,
    octo: str,
    fake_openai: FakeOpenAIServer,
) -> None:
    project = await pin(
        client, tenant, {"token": octo}, test_commands=["python3 run_tests.py"], max_fix_attempts=0
    )
    fake_openai.reply(
        "", tool_calls=[call("write_file", path="test_broken.py", content=FAILING_TEST)]
    )
    fake_openai.reply("", tool_calls=[call("finish", summary="A failing test")])
    started = await client.post(
        org_url(tenant, "/agent/run"),
        json={"prompt": "Add a test", "project_id": project["id"]},
        headers=tenant.headers,
    )
    await wait_job(client, tenant, started.json()["id"])
    failed = (await validations(client, tenant, 1))[0]
    assert failed["status"] == "failed" and failed["fix_run_id"] is None

    notes: list[dict[str, Any]] = []
    for _ in range(200):
        answer = await client.get("/v1/users/me/notifications", headers=tenant.headers)
        notes = [n for n in answer.json()["items"] if "still fails" in n["title"]]
        if notes:
            break
        await asyncio.sleep(0.05)
    assert notes, "no notification"
    assert notes[0]["data"]["validation_id"] == failed["id"]


@pytest.mark.parametrize("kind", ["secondary"])
async def test_validation_reports_survive_a_rate_limit(
    client: httpx.AsyncClient, tenant: Tenant, github: FakeGitHub, octo: str, kind: str
) -> None:
    await pin(client, tenant, {"token": octo}, test_commands=["true"])
    github.push_files("octo", "demo", "feature", {"README.md": "x\n"}, author="octo")
    github.rate_limit_next(2, kind=kind, retry_after=1)
    await github.open_pull("octo", "demo", head="feature", title="readme", user="octo")
    done = (await validations(client, tenant, 1))[0]
    assert done["status"] == "passed", done
    statuses = [s.state for s in github.statuses("octo", "demo", done["head_sha"])]
    assert statuses == ["pending", "success"]

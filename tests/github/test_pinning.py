"""Projects pinned to a repository: the webhook registered (and removed) through GitHub's API,
seed 004's pipeline fields, write-only secrets."""

from __future__ import annotations

import httpx

from tests.agent_support import org_url
from tests.fakes.github import FakeGitHub
from tests.github.conftest import connect, pinned_project
from tests.support import Tenant


async def test_pinning_registers_a_webhook_and_unpinning_removes_it(
    client: httpx.AsyncClient, server: str, tenant: Tenant, github: FakeGitHub, octo: str
) -> None:
    project = await pinned_project(client, tenant, octo, auto_merge_enabled=True)
    assert project["github_repo"] == "octo/demo"
    hooks = github.hooks("octo", "demo")
    assert len(hooks) == 1
    hook = hooks[0]
    assert hook.url == f"{server}/api/v1/webhooks/github"
    assert set(hook.events) == {"pull_request", "push", "check_suite", "issue_comment"}
    assert hook.active and len(hook.secret) >= 32
    ping = await github.wait_for_delivery("ping")
    assert ping.status == 200  # Genway answered GitHub's ping with the hook's secret

    pin_url = org_url(tenant, f"/projects/{project['id']}/github")
    pin = await client.get(pin_url, headers=tenant.headers)
    assert pin.status_code == 200
    assert pin.json()["repository"] == "octo/demo" and pin.json()["hook_id"] == hook.id
    for answer in (pin.text, str(project)):
        assert hook.secret not in answer

    unpinned = await client.patch(
        org_url(tenant, f"/projects/{project['id']}"),
        json={"github_repo": None},
        headers=tenant.headers,
    )
    assert unpinned.status_code == 200 and unpinned.json()["github_repo"] is None
    assert github.hooks("octo", "demo") == []
    assert (await client.get(pin_url, headers=tenant.headers)).status_code == 404

    again = await client.put(pin_url, json={"repository": "octo/demo"}, headers=tenant.headers)
    assert again.status_code == 200 and len(github.hooks("octo", "demo")) == 1
    deleted = await client.delete(
        org_url(tenant, f"/projects/{project['id']}"), headers=tenant.headers
    )
    assert deleted.status_code == 204
    assert github.hooks("octo", "demo") == []  # deleting the project removed its hook
    assert github.schema_violations == []


async def test_pinning_needs_a_connection_and_a_visible_repository(
    client: httpx.AsyncClient, tenant: Tenant, github: FakeGitHub, octo: str
) -> None:
    body = {"name": "demo", "github_repo": "octo/demo"}
    refused = await client.post(org_url(tenant, "/projects"), json=body, headers=tenant.headers)
    assert refused.status_code == 409 and refused.json()["code"] == "github_not_connected"
    listed = await client.get(org_url(tenant, "/projects"), headers=tenant.headers)
    assert listed.json()["total"] == 0  # the refused creation left nothing behind

    assert (await connect(client, tenant, octo)).status_code == 200
    body["github_repo"] = "octo/nope"
    unknown = await client.post(org_url(tenant, "/projects"), json=body, headers=tenant.headers)
    assert unknown.status_code == 502 and "404" in unknown.json()["message"]
    body["github_repo"] = "not a repo"
    invalid = await client.post(org_url(tenant, "/projects"), json=body, headers=tenant.headers)
    assert invalid.status_code == 422


async def test_pipeline_fields_and_write_only_secrets(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    created = await client.post(
        org_url(tenant, "/projects"),
        json={
            "name": "pipeline",
            "setup_commands": ["pip install -e ."],
            "test_commands": ["pytest -q"],
            "secrets": {"API_TOKEN": "s3cret-value-1", "OTHER": "s3cret-value-2"},
            "auto_merge_enabled": True,
            "max_fix_attempts": 2,
            "merge_method": "rebase",
            "planning_statement": "Small steps.",
        },
        headers=tenant.headers,
    )
    assert created.status_code == 201, created.text
    project = created.json()
    assert project["setup_commands"] == ["pip install -e ."]
    assert project["test_commands"] == ["pytest -q"]
    assert project["auto_merge_enabled"] is True and project["max_fix_attempts"] == 2
    assert project["merge_method"] == "rebase" and project["lint_commands"] is None
    assert project["secret_names"] == ["API_TOKEN", "OTHER"]
    assert "s3cret-value" not in created.text

    url = org_url(tenant, f"/projects/{project['id']}")
    changed = await client.patch(
        url,
        json={"secrets": {"OTHER": None, "NEW": "s3cret-value-3"}, "test_commands": ["make test"]},
        headers=tenant.headers,
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["secret_names"] == ["API_TOKEN", "NEW"]
    assert changed.json()["test_commands"] == ["make test"]
    assert changed.json()["setup_commands"] == ["pip install -e ."]  # untouched
    for path in (url, "/api/v1/projects", f"/api/v1/projects/{project['id']}"):
        answer = await client.get(path, headers=tenant.headers)
        assert answer.status_code == 200 and "s3cret-value" not in answer.text

    legacy = await client.post(
        "/api/v1/projects",
        json={"name": "seed 004", "setup_commands": ["make"], "secrets": {"K": "s3cret-value-4"}},
        headers=tenant.headers,
    )
    assert legacy.status_code in (200, 201), legacy.text
    assert legacy.json()["setup_commands"] == ["make"] and legacy.json()["secret_names"] == ["K"]

    bad = await client.patch(url, json={"secrets": {"1BAD": "x"}}, headers=tenant.headers)
    assert bad.status_code == 422
    too_many = await client.patch(url, json={"max_fix_attempts": 99}, headers=tenant.headers)
    assert too_many.status_code == 422

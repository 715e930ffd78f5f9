"""An organization's GitHub connection: a token or an App, checked against GitHub, never shown
again; the repositories it sees; GitHub's rate limits waited out."""

from __future__ import annotations

import httpx
import pytest

from genway.auth.permissions import Role
from tests.agent_support import org_url
from tests.fakes.github import FakeGitHub
from tests.github.conftest import connect, pinned_project
from tests.support import Tenant


async def test_a_token_is_checked_kept_and_never_shown(
    client: httpx.AsyncClient,
    tenant: Tenant,
    github: FakeGitHub,
    octo: str,
    capfd: pytest.CaptureFixture[str],
) -> None:
    refused = await connect(client, tenant, "github_pat_not-a-real-token")
    assert refused.status_code == 502
    assert refused.json()["code"] == "github_error"
    assert "401" in refused.json()["message"]
    missing = await client.get(org_url(tenant, "/github/connection"), headers=tenant.headers)
    assert missing.status_code == 404  # nothing was kept

    made = await connect(client, tenant, octo)
    assert made.status_code == 200, made.text
    assert made.json()["kind"] == "token" and made.json()["account"] == "octo"
    shown = await client.get(org_url(tenant, "/github/connection"), headers=tenant.headers)
    assert shown.status_code == 200
    assert octo not in shown.text and octo not in made.text

    repos = await client.get(org_url(tenant, "/github/repositories"), headers=tenant.headers)
    assert repos.status_code == 200, repos.text
    assert [r["full_name"] for r in repos.json()["items"]] == ["octo/demo"]
    assert repos.json()["has_more"] is False
    assert github.schema_violations == []
    logged = capfd.readouterr()
    assert octo not in logged.err and octo not in logged.out  # never logged


async def test_a_github_app_connection_uses_installation_tokens(
    client: httpx.AsyncClient, tenant: Tenant, github: FakeGitHub, octo: str
) -> None:
    app_id, key = github.add_app("genway-test")
    installation = github.install_app(app_id, "octo", repos=["demo"])
    made = await client.put(
        org_url(tenant, "/github/connection"),
        json={"app_id": app_id, "installation_id": installation, "private_key": key},
        headers=tenant.headers,
    )
    assert made.status_code == 200, made.text
    assert made.json()["kind"] == "app" and made.json()["installation_id"] == installation
    assert "PRIVATE KEY" not in made.text
    repos = await client.get(org_url(tenant, "/github/repositories"), headers=tenant.headers)
    assert [r["full_name"] for r in repos.json()["items"]] == ["octo/demo"]
    kinds = {r.auth_kind for r in github.requests}
    assert {"app_jwt", "installation"} <= kinds  # a JWT got the token that listed the repos
    minted = [r for r in github.requests if r.path.endswith("/access_tokens")]
    assert len(minted) == 1  # kept for the next request

    # A token with less than five minutes left is replaced before each use.
    github.installation_token_ttl_s = 299
    short_app, short_key = github.add_app("short-lived")
    short = github.install_app(short_app, "octo", repos=["demo"])
    body = {"app_id": short_app, "installation_id": short, "private_key": short_key}
    made = await client.put(
        org_url(tenant, "/github/connection"), json=body, headers=tenant.headers
    )
    assert made.status_code == 200, made.text
    for _ in range(2):
        listed = await client.get(org_url(tenant, "/github/repositories"), headers=tenant.headers)
        assert listed.status_code == 200, listed.text
    refreshed = [
        r for r in github.requests if r.path == f"/app/installations/{short}/access_tokens"
    ]
    assert len(refreshed) == 3

    incomplete = await client.put(
        org_url(tenant, "/github/connection"), json={"app_id": app_id}, headers=tenant.headers
    )
    assert incomplete.status_code == 422


async def test_rate_limits_are_waited_out_not_failed(
    client: httpx.AsyncClient, tenant: Tenant, github: FakeGitHub, octo: str
) -> None:
    assert (await connect(client, tenant, octo)).status_code == 200
    github.rate_limit_next(1, kind="secondary", retry_after=1)
    secondary = await client.get(org_url(tenant, "/github/repositories"), headers=tenant.headers)
    assert secondary.status_code == 200, secondary.text
    github.rate_limit_next(1, kind="primary", retry_after=1)
    primary = await client.get(org_url(tenant, "/github/repositories"), headers=tenant.headers)
    assert primary.status_code == 200, primary.text
    listed = [r for r in github.requests if r.path.endswith("/user/repos")]
    assert [r.status for r in listed] == [403, 200, 403, 200]


async def test_roles_and_other_organizations(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, octo: str
) -> None:
    _member, member_key = await tenant.add_member(Role.MEMBER)
    as_member = {"Authorization": f"Bearer {member_key}"}
    refused = await client.put(
        org_url(tenant, "/github/connection"), json={"token": octo}, headers=as_member
    )
    assert refused.status_code == 403

    project = await pinned_project(client, tenant, octo)
    for path in ("/github/connection", "/github/repositories", "/github/deliveries"):
        theirs = await client.get(org_url(tenant, path), headers=other_tenant.headers)
        assert theirs.status_code in (403, 404), (path, theirs.text)
        assert octo not in theirs.text
    for method in ("PUT", "DELETE"):
        theirs = await client.request(
            method,
            org_url(tenant, "/github/connection"),
            json={"token": octo} if method == "PUT" else None,
            headers=other_tenant.headers,
        )
        assert theirs.status_code in (403, 404)
    pin = org_url(tenant, f"/projects/{project['id']}/github")
    assert (await client.get(pin, headers=other_tenant.headers)).status_code in (403, 404)
    assert (await client.delete(pin, headers=other_tenant.headers)).status_code in (403, 404)
    pulls = org_url(tenant, f"/projects/{project['id']}/pulls")
    assert (await client.get(pulls, headers=other_tenant.headers)).status_code in (403, 404)
    # Their own organization has no connection, and cannot reach ours through its project ids.
    own_url = org_url(other_tenant, "/github/connection")
    own = await client.get(own_url, headers=other_tenant.headers)
    assert own.status_code == 404
    own_pin = org_url(other_tenant, f"/projects/{project['id']}/github")
    assert (await client.get(own_pin, headers=other_tenant.headers)).status_code == 404

    busy = await client.delete(org_url(tenant, "/github/connection"), headers=tenant.headers)
    assert busy.status_code == 409 and busy.json()["code"] == "projects_pinned"

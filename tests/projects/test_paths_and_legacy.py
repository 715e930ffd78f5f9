"""Path attacks on the file API are refused with 422, and the seed 002/004 legacy project
routes work in the caller's organization only."""

from __future__ import annotations

import httpx

from tests.agent_support import create_project, org_url, put_file
from tests.support import Tenant

ATTACKS = [
    "/etc/passwd",
    "../secret",
    "src/../../etc/passwd",
    "src/..",
    "a\x00b",
    "a\nb",
    "a\tb",
    "bad\u202etxt.exe",
    "C:/windows/system32",
    "..\\windows",
    "src/",
    "",
    " ",
    "./",
    "x" * 513,
    "/".join(["d"] * 40),
    "y" * 256,
    "src/ spaced /a",
]


async def test_path_attacks_are_refused(client: httpx.AsyncClient, tenant: Tenant):
    project = await create_project(client, tenant)
    pid = project["id"]
    for path in ATTACKS:
        response = await put_file(client, tenant, pid, path, "owned")
        assert response.status_code == 422, (path, response.text)
        assert response.json()["status_code"] == 422
    files = org_url(tenant, f"/projects/{pid}/files")
    for raw in ("%2e%2e/secret", "a%00b", "src/%2e%2e/%2e%2e/x", "a%0Ab"):
        read = await client.get(f"{files}/{raw}", headers=tenant.headers)
        assert read.status_code == 422, (raw, read.text)
        removed = await client.delete(f"{files}/{raw}", headers=tenant.headers)
        assert removed.status_code == 422, (raw, removed.text)
    for prefix in ("../", "/abs", "a\x00"):
        listed = await client.get(files, params={"prefix": prefix}, headers=tenant.headers)
        assert listed.status_code == 422, (prefix, listed.text)
    nul_content = await put_file(client, tenant, pid, "ok.txt", "a\x00b")
    assert nul_content.status_code == 422
    listing = (await client.get(files, headers=tenant.headers)).json()
    assert listing["total"] == 0
    unicode_ok = await put_file(client, tenant, pid, "docs/naïve café.md", "ok")
    assert unicode_ok.status_code == 201 and unicode_ok.json()["path"] == "docs/naïve café.md"


async def test_legacy_project_routes(client: httpx.AsyncClient, tenant: Tenant):
    seed002 = await client.post(
        "/v1/projects/",
        json={"title": "CodeForge", "description": "d", "mode": "guided", "tech_stack": ["py"]},
        headers=tenant.headers,
    )
    assert seed002.status_code == 201, seed002.text
    project = seed002.json()
    assert project["title"] == project["name"] == "CodeForge"
    assert project["mode"] == "guided" and project["tech_stack"] == ["py"]
    assert project["user_id"] == tenant.owner_id and project["status"] == "active"
    pid = project["id"]
    updated = await client.put(
        f"/v1/projects/{pid}", json={"title": "CodeForge 2"}, headers=tenant.headers
    )
    assert updated.json()["title"] == "CodeForge 2" and updated.json()["mode"] == "guided"

    by_query = await client.post(
        f"/v1/projects/{pid}/files",
        params={"path": "src/app.py", "content": "app = 1\n", "language": "python"},
        headers=tenant.headers,
    )
    assert by_query.status_code == 201, by_query.text
    assert by_query.json()["language"] == "python"
    by_body = await client.post(
        f"/v1/projects/{pid}/files",
        json={"path": "src/app.py", "content": "app = 2\n"},
        headers=tenant.headers,
    )
    assert by_body.status_code == 200 and by_body.json()["revision"] == 2
    attack = await client.post(
        f"/v1/projects/{pid}/files",
        params={"path": "../x", "content": "no"},
        headers=tenant.headers,
    )
    assert attack.status_code == 422
    listed = (await client.get(f"/v1/projects/{pid}/files", headers=tenant.headers)).json()
    assert listed["project_id"] == pid and listed["count"] == 1
    assert listed["files"][0]["content"] == "app = 2\n"

    seed004 = await client.post(
        "/api/v1/projects",
        json={"name": "dash", "github_url": "https://github.com/acme/dash"},
        headers=tenant.headers,
    )
    assert seed004.status_code == 201 and seed004.json()["github_url"].endswith("/dash")
    canonical = await client.get(
        org_url(tenant, f"/projects/{seed004.json()['id']}"), headers=tenant.headers
    )
    assert canonical.json()["repository_url"] == "https://github.com/acme/dash"
    listed_004 = (await client.get("/api/v1/projects", headers=tenant.headers)).json()
    assert {p["id"] for p in listed_004["items"]} == {pid, seed004.json()["id"]}
    nameless = await client.post(
        "/api/v1/projects", json={"description": "x"}, headers=tenant.headers
    )
    assert nameless.status_code == 422


async def test_legacy_routes_hide_other_organizations(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    project = await create_project(client, tenant, name="secret")
    pid = project["id"]
    assert (await put_file(client, tenant, pid, "key.txt", "s3cr3t")).status_code == 201
    attacker = other_tenant.headers
    for prefix in ("/v1/projects", "/api/v1/projects"):
        for method, path, body in (
            ("GET", f"{prefix}/{pid}", None),
            ("PUT", f"{prefix}/{pid}", {"name": "pwned"}),
            ("DELETE", f"{prefix}/{pid}", None),
            ("GET", f"{prefix}/{pid}/files", None),
            ("POST", f"{prefix}/{pid}/files", {"path": "x", "content": "y"}),
        ):
            response = await client.request(method, path, json=body, headers=attacker)
            assert response.status_code == 404, (method, path, response.text)
            assert "s3cr3t" not in response.text and "secret" not in response.text
        listed = (await client.get(prefix, headers=attacker)).json()
        assert listed["items"] == []
    still = await client.get(
        org_url(tenant, f"/projects/{pid}/files/key.txt"), headers=tenant.headers
    )
    assert still.json()["content"] == "s3cr3t" and still.json()["revision"] == 1

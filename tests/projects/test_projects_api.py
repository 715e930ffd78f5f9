"""Projects and their virtual file system through the canonical API: CRUD, roles, files as
revisions, reading back, listing by prefix, size limits and concurrent writers."""

from __future__ import annotations

import asyncio

import httpx

from genway.auth.permissions import Role
from tests.agent_support import create_project, org_url, put_file
from tests.support import Tenant, bearer


async def test_project_crud_and_roles(client: httpx.AsyncClient, tenant: Tenant):
    created = await create_project(
        client,
        tenant,
        name="shop",
        description="An online shop",
        repository_url="https://github.com/acme/shop",
        settings={"rules": "use type hints", "auto_merge": False},
    )
    assert created["organization_id"] == tenant.org_id and created["head_revision"] == 0
    assert created["created_by"] == tenant.owner_id and created["total_bytes"] == 0
    url = org_url(tenant, f"/projects/{created['id']}")
    assert (await client.get(url, headers=tenant.headers)).json()["name"] == "shop"
    second = await create_project(client, tenant, name="blog")
    listed = (await client.get(org_url(tenant, "/projects"), headers=tenant.headers)).json()
    assert [p["id"] for p in listed["items"]] == [second["id"], created["id"]]
    assert listed["total"] == 2

    changed = await client.patch(
        url, json={"name": "shop-v2", "repository_url": None}, headers=tenant.headers
    )
    assert changed.status_code == 200, changed.text
    assert changed.json()["name"] == "shop-v2" and changed.json()["repository_url"] is None
    assert changed.json()["settings"]["rules"] == "use type hints"

    for bad in (
        {"name": ""},
        {"name": "x", "repository_url": "javascript:alert(1)"},
        {"name": "x", "owner": "me"},
        {"name": "x", "settings": {"a": {"b": {"c": {"d": {"e": {"f": {"g": {"h": {}}}}}}}}}},
    ):
        refused = await client.post(org_url(tenant, "/projects"), json=bad, headers=tenant.headers)
        assert refused.status_code == 422, (bad, refused.text)
    null_name = await client.patch(url, json={"name": None}, headers=tenant.headers)
    assert null_name.status_code == 422

    _user, viewer_key = await tenant.add_member(Role.VIEWER)
    viewer = bearer(viewer_key)
    assert (await client.get(url, headers=viewer)).status_code == 200
    assert (await client.patch(url, json={"name": "x"}, headers=viewer)).status_code == 403
    put = await client.put(f"{url}/files", json={"path": "a", "content": "b"}, headers=viewer)
    assert put.status_code == 403
    assert (await client.delete(url, headers=viewer)).status_code == 403

    assert (await client.delete(url, headers=tenant.headers)).status_code == 204
    gone = await client.get(url, headers=tenant.headers)
    assert gone.status_code == 404 and gone.json()["status_code"] == 404


async def test_files_are_revisions_that_read_back(client: httpx.AsyncClient, tenant: Tenant):
    project = await create_project(client, tenant)
    pid = project["id"]
    files = org_url(tenant, f"/projects/{pid}/files")
    first = await put_file(client, tenant, pid, "./src//main.py", "print('v1')\n")
    assert first.status_code == 201, first.text
    assert first.json()["path"] == "src/main.py" and first.json()["created"] is True
    assert first.json()["revision"] == 1 and first.json()["content"] == "print('v1')\n"
    second = await put_file(client, tenant, pid, "src/main.py", "print('v2')\n")
    assert second.status_code == 200 and second.json()["revision"] == 2
    await put_file(client, tenant, pid, "src/util/strings.py", "X = 1\n")
    await put_file(client, tenant, pid, "README.md", "# demo\n")

    listed = (await client.get(files, params={"prefix": "src/"}, headers=tenant.headers)).json()
    assert [f["path"] for f in listed["items"]] == ["src/main.py", "src/util/strings.py"]
    assert "content" not in listed["items"][0] and listed["total"] == 2
    everything = (await client.get(files, headers=tenant.headers)).json()
    assert everything["total"] == 3

    now = await client.get(f"{files}/src/main.py", headers=tenant.headers)
    assert now.json()["content"] == "print('v2')\n" and now.json()["revision"] == 2
    then = await client.get(f"{files}/src/main.py", params={"revision": 1}, headers=tenant.headers)
    assert then.json()["content"] == "print('v1')\n" and then.json()["revision"] == 1

    deleted = await client.delete(f"{files}/src/main.py", headers=tenant.headers)
    assert deleted.status_code == 200
    assert deleted.json()["revision"] == 5
    assert deleted.json()["changes"] == [
        {
            "path": "src/main.py",
            "action": "delete",
            "language": None,
            "size_bytes": 0,
            "sha256": None,
        }
    ]
    assert (await client.get(f"{files}/src/main.py", headers=tenant.headers)).status_code == 404
    old = await client.get(f"{files}/src/main.py", params={"revision": 2}, headers=tenant.headers)
    assert old.json()["content"] == "print('v2')\n"
    missing = await client.delete(f"{files}/src/main.py", headers=tenant.headers)
    assert missing.status_code == 404

    revisions_url = org_url(tenant, f"/projects/{pid}/revisions")
    revisions = (await client.get(revisions_url, headers=tenant.headers)).json()
    assert [r["revision"] for r in revisions["items"]] == [5, 4, 3, 2, 1]
    assert revisions["items"][0]["author_id"] == tenant.owner_id
    of_main = await client.get(
        revisions_url, params={"path": "src/main.py"}, headers=tenant.headers
    )
    assert [r["revision"] for r in of_main.json()["items"]] == [5, 2, 1]
    two = (await client.get(f"{revisions_url}/2", headers=tenant.headers)).json()
    assert two["changes"][0]["content"] == "print('v2')\n"
    assert (await client.get(f"{revisions_url}/99", headers=tenant.headers)).status_code == 404
    head = (await client.get(org_url(tenant, f"/projects/{pid}"), headers=tenant.headers)).json()
    assert head["head_revision"] == 5 and head["total_bytes"] == len("X = 1\n# demo\n")


async def test_size_limits(client: httpx.AsyncClient, tenant: Tenant):
    project = await create_project(client, tenant)
    pid = project["id"]
    too_big = await put_file(client, tenant, pid, "big.txt", "x" * 1001)
    assert too_big.status_code == 413 and "limit is 1000" in too_big.json()["detail"]
    for name in ("a", "b"):
        assert (await put_file(client, tenant, pid, name, "y" * 1000)).status_code == 201
    over = await put_file(client, tenant, pid, "c", "z" * 600)
    assert over.status_code == 413 and "2500" in over.json()["detail"]
    # The refused write left nothing behind: the same project still takes a smaller file.
    assert (await put_file(client, tenant, pid, "c", "z" * 500)).status_code == 201
    shrink = await put_file(client, tenant, pid, "a", "")
    assert shrink.status_code == 200
    head = (await client.get(org_url(tenant, f"/projects/{pid}"), headers=tenant.headers)).json()
    assert head["total_bytes"] == 1500 and head["head_revision"] == 4


async def test_concurrent_writers_get_distinct_revisions(client: httpx.AsyncClient, tenant: Tenant):
    project = await create_project(client, tenant)
    pid = project["id"]
    responses = await asyncio.gather(
        *(put_file(client, tenant, pid, f"f{i % 3}.txt", str(i)) for i in range(12))
    )
    assert all(r.status_code in (200, 201) for r in responses), [r.text for r in responses]
    assert sorted(r.json()["revision"] for r in responses) == list(range(1, 13))
    assert sum(r.json()["created"] for r in responses) == 3

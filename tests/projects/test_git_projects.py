"""Projects as git repositories: writes are commits, history, diffs, branches, merges, the agent's
worktrees (and their attacks), the conversion of projects from before git storage, and another
organization seeing none of it."""

from __future__ import annotations

import os
from pathlib import Path

import httpx
import pygit2
from sqlalchemy import insert

from genway.config import Settings
from genway.db import Database, utcnow
from genway.projects import legacy, repos
from genway.projects.models import FileRevision, ProjectFile
from genway.projects.workspaces import commit_worktree, diff_stat, open_worktree, remove_worktree
from tests.agent_support import create_project, org_url, put_file
from tests.support import Tenant

AUTHOR = {"author_name": "Agent", "author_email": "agent@example.com"}


def repo_of(settings: Settings, tenant: Tenant, pid: int) -> pygit2.Repository:
    return repos.open_repo(repos.repo_path(repos.repos_root(settings), tenant.org_id, pid))


async def test_writes_are_commits_with_history_and_diffs(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
):
    pid = (await create_project(client, tenant))["id"]
    base = org_url(tenant, f"/projects/{pid}")
    await put_file(client, tenant, pid, "a.txt", "one\n")
    await put_file(client, tenant, pid, "a.txt", "one\ntwo\n")
    await client.delete(f"{base}/files/a.txt", headers=tenant.headers)
    repo = repo_of(settings, tenant, pid)
    head = repos.branch_head(repo, "main")
    assert head is not None and repo[head].peel(pygit2.Commit).message == "delete a.txt"

    commits = (await client.get(f"{base}/commits", headers=tenant.headers)).json()
    assert [c["revision"] for c in commits["items"]] == [3, 2, 1] and commits["total"] == 3
    assert commits["items"][0]["sha"] == head
    assert commits["items"][0]["author_email"] == tenant.owner_email
    assert commits["items"][1]["parents"] == [commits["items"][2]["sha"]]
    paged = await client.get(
        f"{base}/commits", params={"skip": 1, "limit": 1}, headers=tenant.headers
    )
    assert [c["revision"] for c in paged.json()["items"]] == [2]

    diff = (
        await client.get(f"{base}/diff", params={"from": 1, "to": 2}, headers=tenant.headers)
    ).json()
    assert diff["files_changed"] == 1 and diff["insertions"] == 1 and diff["deletions"] == 0
    assert diff["files"][0]["status"] == "modified" and "+two" in diff["files"][0]["patch"]
    assert diff["truncated"] is False
    by_sha = await client.get(
        f"{base}/diff",
        params={"from": commits["items"][2]["sha"], "to": "main"},
        headers=tenant.headers,
    )
    assert by_sha.json()["files"][0]["status"] == "deleted"
    unknown = await client.get(f"{base}/commits", params={"ref": "nope"}, headers=tenant.headers)
    assert unknown.status_code == 404 and "Unknown ref 'nope'" in unknown.json()["detail"]
    both = await client.get(
        f"{base}/files/a.txt", params={"ref": "main", "revision": 1}, headers=tenant.headers
    )
    assert both.status_code == 422
    bad = await client.get(f"{base}/commits", params={"ref": "-x..y"}, headers=tenant.headers)
    assert bad.status_code == 422


async def test_worktree_branch_merge_and_conflict(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
):
    pid = (await create_project(client, tenant))["id"]
    base = org_url(tenant, f"/projects/{pid}")
    empty = await open_worktree(settings, tenant.org_id, pid, "genway/run-1")
    assert empty.base_commit is None and list(empty.path.iterdir()) == []
    (empty.path / "seed.txt").write_text("seed\n")
    first = await commit_worktree(settings, empty, "seed", **AUTHOR)
    assert first is not None
    await remove_worktree(settings, empty)
    assert not empty.path.exists()
    merged = await client.post(
        f"{base}/merge", json={"branch": "genway/run-1"}, headers=tenant.headers
    )
    assert merged.status_code == 200, merged.text
    assert merged.json() == {"revision": 1, "sha": first, "fast_forward": True}
    assert (await client.get(f"{base}/files/seed.txt", headers=tenant.headers)).json()[
        "content"
    ] == "seed\n"

    tree = await open_worktree(settings, tenant.org_id, pid, "genway/run-2")
    assert tree.base_commit == first and (tree.path / "seed.txt").read_text() == "seed\n"
    assert await commit_worktree(settings, tree, "nothing", **AUTHOR) is None
    (tree.path / "src").mkdir()
    (tree.path / "src" / "app.py").write_text("print('hi')\n")
    (tree.path / ".gitignore").write_text("build/\n*.log\n")
    (tree.path / "build").mkdir()
    (tree.path / "build" / "out.bin").write_text("x")
    (tree.path / "debug.log").write_text("x")
    sha = await commit_worktree(settings, tree, "add app", **AUTHOR)
    assert sha is not None
    stat = await diff_stat(settings, tenant.org_id, pid, "main", "genway/run-2")
    assert stat.files_changed == 2 and {f.path for f in stat.files} == {".gitignore", "src/app.py"}
    await put_file(client, tenant, pid, "seed.txt", "main side\n")
    merged = await client.post(
        f"{base}/merge", json={"branch": "genway/run-2"}, headers=tenant.headers
    )
    assert merged.status_code == 200 and merged.json()["fast_forward"] is False
    assert merged.json()["revision"] == 3
    listed = (await client.get(f"{base}/files", headers=tenant.headers)).json()
    assert [f["path"] for f in listed["items"]] == [".gitignore", "seed.txt", "src/app.py"]
    branch_files = await client.get(
        f"{base}/files", params={"ref": "genway/run-2"}, headers=tenant.headers
    )
    assert branch_files.json()["total"] == 3 and branch_files.json()["items"][0]["revision"] is None
    on_branch = await client.get(
        f"{base}/files/seed.txt", params={"ref": "genway/run-2"}, headers=tenant.headers
    )
    assert on_branch.json()["content"] == "seed\n"
    branches = (await client.get(f"{base}/branches", headers=tenant.headers)).json()
    assert [b["name"] for b in branches] == ["main", "genway/run-1", "genway/run-2"]
    assert branches[0]["sha"] == merged.json()["sha"]

    (tree.path / "seed.txt").write_text("branch side\n")
    await commit_worktree(settings, tree, "conflicting", **AUTHOR)
    await put_file(client, tenant, pid, "seed.txt", "main again\n")
    before = (await client.get(base, headers=tenant.headers)).json()["head_revision"]
    conflict = await client.post(
        f"{base}/merge", json={"branch": "genway/run-2"}, headers=tenant.headers
    )
    assert conflict.status_code == 409 and "seed.txt" in conflict.json()["detail"]
    after = (await client.get(base, headers=tenant.headers)).json()["head_revision"]
    assert after == before
    assert (
        await client.post(f"{base}/merge", json={"branch": "nope"}, headers=tenant.headers)
    ).status_code == 404
    commits = (
        await client.get(f"{base}/commits", params={"ref": "genway/run-2"}, headers=tenant.headers)
    ).json()
    assert commits["items"][0]["revision"] is None


async def test_worktree_cannot_escape_its_repository(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, settings: Settings
):
    victim = (await create_project(client, other_tenant))["id"]
    await put_file(client, other_tenant, victim, "secret.txt", "s3cr3t")
    victim_repo = repo_of(settings, other_tenant, victim)
    victim_refs = {r: str(victim_repo.references[r].target) for r in victim_repo.references}
    pid = (await create_project(client, tenant))["id"]
    tree = await open_worktree(settings, tenant.org_id, pid, "genway/run-7")
    victim_path = repos.repo_path(repos.repos_root(settings), other_tenant.org_id, victim)
    (tree.path / ".git").write_text(f"gitdir: {victim_path}\n")
    (tree.path / "sub").mkdir()
    (tree.path / "sub" / ".git").mkdir()
    (tree.path / "sub" / ".git" / "config").write_text("[core]\n\thooksPath=/tmp\n")
    os.symlink("/etc/passwd", tree.path / "passwd")
    os.symlink("/etc", tree.path / "etc")
    (tree.path / "ok.txt").write_text("mine\n")
    sha = await commit_worktree(settings, tree, "attack", **AUTHOR)
    repo = repo_of(settings, tenant, pid)
    assert sha is not None and repos.branch_head(repo, "genway/run-7") == sha
    commit_tree = repo[sha].peel(pygit2.Tree)
    assert sorted(e.name for e in commit_tree) == ["etc", "ok.txt", "passwd", "sub"] or sorted(
        e.name for e in commit_tree
    ) == ["etc", "ok.txt", "passwd"]
    assert commit_tree["passwd"].filemode == pygit2.enums.FileMode.LINK
    assert repo[commit_tree["passwd"].id].data == b"/etc/passwd"
    assert commit_tree["etc"].filemode == pygit2.enums.FileMode.LINK
    victim_repo = repo_of(settings, other_tenant, victim)
    assert {r: str(victim_repo.references[r].target) for r in victim_repo.references} == victim_refs
    for bad in ("../main", "-x", "a..b", "x.lock", "a b", "/abs", "HEAD", ""):
        try:
            await open_worktree(settings, tenant.org_id, pid, bad)
        except Exception as exc:  # InvalidBranch
            assert getattr(exc, "status_code", None) == 422, bad
        else:
            raise AssertionError(f"{bad!r} was accepted")


async def test_another_organization_sees_nothing(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant, settings: Settings
):
    pid = (await create_project(client, tenant))["id"]
    await put_file(client, tenant, pid, "key.txt", "s3cr3t")
    tree = await open_worktree(settings, tenant.org_id, pid, "genway/run-3")
    (tree.path / "key.txt").write_text("s3cr3t2")
    await commit_worktree(settings, tree, "x", **AUTHOR)
    base = org_url(tenant, f"/projects/{pid}")
    for method, path, params, body in (
        ("GET", f"{base}/commits", None, None),
        ("GET", f"{base}/diff", {"from": "1", "to": "genway/run-3"}, None),
        ("GET", f"{base}/branches", None, None),
        ("GET", f"{base}/files", {"ref": "genway/run-3"}, None),
        ("GET", f"{base}/files/key.txt", {"ref": "genway/run-3"}, None),
        ("POST", f"{base}/merge", None, {"branch": "genway/run-3"}),
    ):
        response = await client.request(
            method, path, params=params, json=body, headers=other_tenant.headers
        )
        assert response.status_code == 404, (method, path, response.text)
        assert "s3cr3t" not in response.text and "genway/run-3" not in response.text
    other_url = org_url(other_tenant, f"/projects/{pid}")
    for suffix in ("/commits", "/branches", "/diff"):
        response = await client.get(other_url + suffix, headers=other_tenant.headers)
        assert response.status_code == 404
    imported = await client.post(
        f"{base}/import", files={"bundle": ("r.bundle", b"x")}, headers=other_tenant.headers
    )
    assert imported.status_code == 404


async def test_legacy_projects_convert_with_the_same_content(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, settings: Settings
):
    pid = (await create_project(client, tenant))["id"]
    history = [
        (1, [("a.txt", "a1"), ("b/c.txt", "c1")]),
        (2, [("a.txt", "a2")]),
        (3, [("b/c.txt", None)]),
        (4, [("d.md", "# d")]),
    ]
    current: dict[str, str] = {}
    async with db.transaction() as session:
        for number, changes in history:
            for path, content in changes:
                await session.execute(
                    insert(FileRevision).values(
                        project_id=pid,
                        revision=number,
                        path=path,
                        action="write" if content is not None else "delete",
                        content=content,
                        language=None,
                        size_bytes=len(content or ""),
                        sha256=None,
                        author_id=tenant.owner_id,
                        job_id=None,
                        message=f"legacy {number}",
                        created_at=utcnow(),
                    )
                )
                if content is None:
                    current.pop(path)
                else:
                    current[path] = content
        for path, content in current.items():
            await session.execute(
                insert(ProjectFile).values(
                    project_id=pid,
                    path=path,
                    content=content,
                    language=None,
                    size_bytes=len(content),
                    sha256="0" * 64,
                    revision=4,
                    created_at=utcnow(),
                    updated_at=utcnow(),
                )
            )
        from sqlalchemy import update

        from genway.projects.models import projects_table

        await session.execute(
            update(projects_table).where(projects_table.c.id == pid).values(head_revision=4)
        )
    assert await legacy.convert_legacy_projects(settings) == 1
    assert await legacy.convert_legacy_projects(settings) == 0
    files = org_url(tenant, f"/projects/{pid}/files")
    expected = {
        1: {"a.txt": "a1", "b/c.txt": "c1"},
        2: {"a.txt": "a2", "b/c.txt": "c1"},
        3: {"a.txt": "a2"},
        4: {"a.txt": "a2", "d.md": "# d"},
    }
    for number, state in expected.items():
        for path in ("a.txt", "b/c.txt", "d.md"):
            read = await client.get(
                f"{files}/{path}", params={"revision": number}, headers=tenant.headers
            )
            if path in state:
                assert read.json()["content"] == state[path], (number, path)
            else:
                assert read.status_code == 404, (number, path)
    commits = (
        await client.get(org_url(tenant, f"/projects/{pid}/commits"), headers=tenant.headers)
    ).json()
    assert [c["revision"] for c in commits["items"]] == [4, 3, 2, 1]
    assert commits["items"][0]["message"] == "legacy 4"
    write = await put_file(client, tenant, pid, "a.txt", "a5")
    assert write.json()["revision"] == 5
    assert (
        await client.get(f"{files}/a.txt", params={"revision": 2}, headers=tenant.headers)
    ).json()["content"] == "a2"


async def test_lazy_conversion_on_first_write(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
):
    pid = (await create_project(client, tenant))["id"]
    async with db.transaction() as session:
        from sqlalchemy import update

        from genway.projects.models import projects_table

        await session.execute(
            insert(FileRevision).values(
                project_id=pid,
                revision=1,
                path="old.txt",
                action="write",
                content="old",
                language=None,
                size_bytes=3,
                sha256=None,
                author_id=None,
                job_id=None,
                message="",
                created_at=utcnow(),
            )
        )
        await session.execute(
            insert(ProjectFile).values(
                project_id=pid,
                path="old.txt",
                content="old",
                language=None,
                size_bytes=3,
                sha256="0" * 64,
                revision=1,
                created_at=utcnow(),
                updated_at=utcnow(),
            )
        )
        await session.execute(
            update(projects_table)
            .where(projects_table.c.id == pid)
            .values(head_revision=1, total_bytes=3)
        )
    assert (await put_file(client, tenant, pid, "new.txt", "new")).json()["revision"] == 2
    files = org_url(tenant, f"/projects/{pid}/files")
    assert (await client.get(f"{files}/old.txt", headers=tenant.headers)).json()["content"] == "old"


async def test_a_failed_write_is_not_visible_and_is_dropped(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings
):
    pid = (await create_project(client, tenant))["id"]
    await put_file(client, tenant, pid, "a.txt", "kept")
    repo = repo_of(settings, tenant, pid)
    head = repos.branch_head(repo, "main")
    assert head is not None
    # A crash after the ref moved but before the database committed leaves an orphan on main.
    tree = repos.build_tree(repo, head, [("a.txt", b"lost", 0o100644)])
    orphan = repos.make_commit(repo, tree, [head], repos.signature("x", "x@x"), "lost")
    repos.cas_ref(repo, "main", head, orphan)
    files = org_url(tenant, f"/projects/{pid}/files")
    assert (await client.get(f"{files}/a.txt", headers=tenant.headers)).json()["content"] == "kept"
    await put_file(client, tenant, pid, "b.txt", "next")
    new_head = repos.branch_head(repo, "main")
    assert new_head is not None and str(repo[new_head].peel(pygit2.Commit).parent_ids[0]) == head
    assert (await client.get(f"{files}/a.txt", headers=tenant.headers)).json()["content"] == "kept"


def test_ref_cas_refuses_a_moved_branch(tmp_path: Path):
    repo = repos.open_repo(tmp_path / "r.git")
    tree = repos.build_tree(repo, None, [("a", b"1", 0o100644)])
    one = repos.make_commit(repo, tree, [], repos.signature("x", "x@x"), "1")
    two = repos.make_commit(repo, tree, [one], repos.signature("x", "x@x"), "2")
    repos.cas_ref(repo, "main", None, one)
    try:
        repos.cas_ref(repo, "main", None, two)
    except repos.RefMoved:
        pass
    else:
        raise AssertionError("a stale compare-and-swap succeeded")
    repos.cas_ref(repo, "main", one, two)
    assert repos.branch_head(repo, "main") == two

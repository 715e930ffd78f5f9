"""Importing repositories: a local clone only under GENWAY_GIT_IMPORT_DIRS, https clone failures
as clean errors, and git bundles read without git; imported history gets revision numbers."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import httpx
import pygit2
import pytest

from genway.config import Settings
from genway.projects import repos
from tests.agent_support import create_project, org_url
from tests.support import Tenant


@pytest.fixture
def sources(tmp_path: Path) -> Path:
    path = tmp_path / "sources"
    path.mkdir()
    return path


@pytest.fixture
def settings(settings: Settings, sources: Path) -> Settings:
    return settings.model_copy(update={"git_import_dirs": f"{sources}, /nonexistent"})


def make_source(path: Path) -> tuple[pygit2.Repository, list[str]]:
    """A repository with `trunk` (its HEAD: 3 first-parent commits, one a merge) and `feature`."""
    repo = pygit2.init_repository(str(path), bare=True, initial_head="trunk")
    who = pygit2.Signature("Dev", "dev@example.com", 1_700_000_000, 0)
    shas: list[str] = []

    def commit(ref: str | None, files: dict[str, bytes], parents: list[str], message: str) -> str:
        builder = pygit2.Index()
        for name, data in files.items():
            builder.add(pygit2.IndexEntry(name, repo.create_blob(data), pygit2.enums.FileMode.BLOB))
        tree = builder.write_tree(repo)
        return str(repo.create_commit(ref, who, who, message, tree, parents))

    shas.append(commit("refs/heads/trunk", {"README.md": b"hello\n"}, [], "first\n"))
    side = commit(None, {"README.md": b"hello\n", "side.txt": b"side\n"}, [shas[0]], "side\n")
    shas.append(commit("refs/heads/trunk", {"README.md": b"hello v2\n"}, [shas[0]], "second\n"))
    shas.append(
        commit(
            "refs/heads/trunk",
            {"README.md": b"hello v2\n", "side.txt": b"side\n"},
            [shas[1], side],
            "merge side\n",
        )
    )
    repo.create_reference("refs/heads/feature", side)
    return repo, shas


def bundle_of(repo: pygit2.Repository, tmp: Path) -> bytes:
    """`git bundle create --all` without git: the header and a packfile built by libgit2."""
    builder = pygit2.PackBuilder(repo)
    heads = {name: str(repo.references[name].target) for name in repo.references}
    for sha in heads.values():
        for commit in repo.walk(sha):
            builder.add_recur(commit.id)
    out = tmp / "pack"
    out.mkdir()
    builder.write(str(out))
    pack = next(out.glob("*.pack")).read_bytes()
    head = str(repo.head.target)
    lines = [f"{head} HEAD"] + [f"{sha} {name}" for name, sha in sorted(heads.items())]
    return ("# v2 git bundle\n" + "\n".join(lines) + "\n\n").encode() + pack


async def check_imported(
    client: httpx.AsyncClient, tenant: Tenant, pid: int, shas: list[str]
) -> None:
    base = org_url(tenant, f"/projects/{pid}")
    project = (await client.get(base, headers=tenant.headers)).json()
    assert project["head_revision"] == 3 and project["total_bytes"] == len(b"hello v2\nside\n")
    commits = (await client.get(f"{base}/commits", headers=tenant.headers)).json()
    numbered = {c["sha"]: c["revision"] for c in commits["items"]}
    assert [numbered[s] for s in shas] == [1, 2, 3] and commits["total"] == 4
    readme = f"{base}/files/README.md"
    first = await client.get(readme, params={"revision": 1}, headers=tenant.headers)
    assert first.json()["content"] == "hello\n"
    assert (await client.get(readme, headers=tenant.headers)).json()["content"] == "hello v2\n"
    branches = (await client.get(f"{base}/branches", headers=tenant.headers)).json()
    assert [b["name"] for b in branches] == ["main", "feature"]
    listed = (await client.get(f"{base}/files", headers=tenant.headers)).json()
    assert [f["path"] for f in listed["items"]] == ["README.md", "side.txt"]


async def test_local_clone_under_the_allowed_directory(
    client: httpx.AsyncClient, tenant: Tenant, sources: Path, tmp_path: Path
):
    _repo, shas = make_source(sources / "app.git")
    project = await create_project(client, tenant, repository_url=f"file://{sources}/app.git")
    await check_imported(client, tenant, project["id"], shas)
    by_path = await create_project(client, tenant, repository_url=str(sources / "app.git"))
    assert by_path["head_revision"] == 3

    make_source(tmp_path / "outside.git")
    for url in (
        str(tmp_path / "outside.git"),
        f"file://{tmp_path}/outside.git",
        f"{sources}/../outside.git",
    ):
        refused = await client.post(
            org_url(tenant, "/projects"),
            json={"name": "x", "repository_url": url},
            headers=tenant.headers,
        )
        assert refused.status_code == 422, (url, refused.text)
        assert "GENWAY_GIT_IMPORT_DIRS" in refused.json()["detail"]
    (sources / "link.git").symlink_to(tmp_path / "outside.git")
    linked = await client.post(
        org_url(tenant, "/projects"),
        json={"name": "x", "repository_url": str(sources / "link.git")},
        headers=tenant.headers,
    )
    assert linked.status_code == 422


async def test_https_clone_failure_is_clean(client: httpx.AsyncClient, tenant: Tenant):
    failed = await client.post(
        org_url(tenant, "/projects"),
        json={"name": "x", "repository_url": "https://127.0.0.1:9/nothing.git", "clone": True},
        headers=tenant.headers,
    )
    assert failed.status_code == 502, failed.text
    assert "Cloning 'https://127.0.0.1:9/nothing.git' failed" in failed.json()["detail"]
    listed = (await client.get(org_url(tenant, "/projects"), headers=tenant.headers)).json()
    assert listed["total"] == 0


async def test_bundle_import(
    client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path, settings: Settings
):
    repo, shas = make_source(tmp_path / "mine.git")
    data = bundle_of(repo, tmp_path)
    pid = (await create_project(client, tenant))["id"]
    url = org_url(tenant, f"/projects/{pid}/import")
    garbage = await client.post(
        url, files={"bundle": ("r.bundle", b"nope")}, headers=tenant.headers
    )
    assert garbage.status_code == 422 and "bundle" in garbage.json()["detail"]
    corrupt = data[:-30] + b"x" * 30
    broken = await client.post(url, files={"bundle": ("r.bundle", corrupt)}, headers=tenant.headers)
    assert broken.status_code == 422
    too_big = await client.post(
        url, files={"bundle": ("r.bundle", b"x" * 3000)}, headers=tenant.headers
    )
    assert too_big.status_code == 413
    imported = await client.post(url, files={"bundle": ("r.bundle", data)}, headers=tenant.headers)
    assert imported.status_code == 200, imported.text
    assert imported.json() == {"project_id": pid, "head_revision": 3}
    await check_imported(client, tenant, pid, shas)
    again = await client.post(url, files={"bundle": ("r.bundle", data)}, headers=tenant.headers)
    assert again.status_code == 409
    deleted = await client.delete(org_url(tenant, f"/projects/{pid}"), headers=tenant.headers)
    assert deleted.status_code == 204
    assert not repos.repo_path(repos.repos_root(settings), tenant.org_id, pid).exists()


@pytest.mark.skipif(shutil.which("git") is None, reason="needs the git CLI to make a bundle")
async def test_bundle_made_by_git(client: httpx.AsyncClient, tenant: Tenant, tmp_path: Path):
    work = tmp_path / "work"
    env = {
        "GIT_AUTHOR_NAME": "a",
        "GIT_AUTHOR_EMAIL": "a@a",
        "GIT_COMMITTER_NAME": "a",
        "GIT_COMMITTER_EMAIL": "a@a",
        "HOME": str(tmp_path),
        "PATH": "/usr/bin:/bin",
    }
    run = lambda *args: subprocess.run(["git", *args], cwd=work, env=env, check=True)  # noqa: E731
    work.mkdir()
    run("init", "-q", "-b", "master")
    for i in range(3):
        (work / "f.txt").write_text("line\n" * (i + 1))
        run("add", "f.txt")
        run("commit", "-q", "-m", f"c{i}")
    run("bundle", "create", "-q", str(tmp_path / "r.bundle"), "--all")
    pid = (await create_project(client, tenant))["id"]
    imported = await client.post(
        org_url(tenant, f"/projects/{pid}/import"),
        files={"bundle": ("r.bundle", (tmp_path / "r.bundle").read_bytes())},
        headers=tenant.headers,
    )
    assert imported.status_code == 200, imported.text
    read = await client.get(
        org_url(tenant, f"/projects/{pid}/files/f.txt"),
        params={"revision": 2},
        headers=tenant.headers,
    )
    assert read.json()["content"] == "line\nline\n"

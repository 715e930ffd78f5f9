"""Tests of the fake GitHub itself: REST answers match GitHub's OpenAPI description, git works
over smart HTTP from both the git binary and libgit2, webhooks are signed and shaped like
GitHub's, merges really happen in the bare repository."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import subprocess
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import jwt
import pygit2
import pytest
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.fakes.github import FakeGitHub, sign_webhook, webhook_example
from tests.fakes.github.npm_cache import NpmUnavailable, webhook_examples_file


class Receiver:
    """A webhook endpoint on 127.0.0.1 that records what it is sent."""

    def __init__(self) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        self.url = ""

        async def hook(request: Request) -> JSONResponse:
            self.received.append((dict(request.headers), await request.body()))
            return JSONResponse({"ok": True}, 202)

        app = Starlette(routes=[Route("/hook", hook, methods=["POST"])])
        self.server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning", lifespan="off")
        )

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[Receiver]:
        task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/hook"
        try:
            yield self
        finally:
            self.server.should_exit = True
            await task


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    async with Receiver().running() as running:
        yield running


@pytest.fixture
async def gh(tmp_path: Path) -> AsyncIterator[FakeGitHub]:
    async with FakeGitHub(tmp_path / "github") as fake:
        yield fake
        assert fake.schema_violations == []
        assert fake.webhook_violations == []


def auth(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", "Accept": "application/vnd.github+json"}


def app_jwt(app_id: int, key: str, **claims: Any) -> str:
    now = int(time.time())
    payload = {"iat": now - 30, "exp": now + 540, "iss": str(app_id), **claims}
    # PyJWS signs the claims as given: GitHub also accepts an integer `iss`.
    return jwt.PyJWS().encode(json.dumps(payload).encode(), key, algorithm="RS256")


def git(*args: str, cwd: Path | None = None) -> str:
    done = subprocess.run(
        ["git", "-c", "user.name=Dev", "-c", "user.email=dev@example.com", *args],
        cwd=cwd,
        capture_output=True,
        text=True,
        check=False,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin", "HOME": str(cwd or "/tmp")},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def with_token(url: str, token: str) -> str:
    return url.replace("http://", f"http://x-access-token:{token}@")


async def test_rest_endpoints_answer_as_documented(gh: FakeGitHub, receiver: Receiver) -> None:
    token = gh.add_user("octo")
    repo = gh.create_repo("octo", "demo", {"README.md": "hi\n", "src/app.py": "x = 1\n"})
    gh.create_repo("octo", "secret", private=True)
    gh.push_files("octo", "demo", "feature", {"src/app.py": "x = 2\n"}, message="Two")
    async with httpx.AsyncClient(base_url=gh.api_url, headers=auth(token)) as api:
        user = (await api.get("/user")).json()
        assert user["login"] == "octo"
        listed = await api.get("/user/repos", params={"per_page": 1})
        assert [r["full_name"] for r in listed.json()] == ["octo/demo"]
        assert 'rel="next"' in listed.headers["link"]
        shown = (await api.get("/repos/octo/demo")).json()
        assert shown["clone_url"] == f"{gh.url}/octo/demo.git" == repo.clone_url
        assert shown["default_branch"] == "main" and shown["permissions"]["admin"]

        created = await api.post(
            "/repos/octo/demo/hooks",
            json={
                "name": "web",
                "config": {"url": receiver.url, "content_type": "json", "secret": "s3cret"},
                "events": ["push", "pull_request", "issue_comment"],
                "active": True,
            },
        )
        assert created.status_code == 201, created.text
        hook_id = created.json()["id"]
        assert created.json()["config"]["secret"] == "********"
        assert [h.id for h in gh.hooks("octo", "demo")] == [hook_id]
        assert (await api.get("/repos/octo/demo/hooks")).json()[0]["id"] == hook_id
        assert (await api.get(f"/repos/octo/demo/hooks/{hook_id}")).status_code == 200
        patched = await api.patch(f"/repos/octo/demo/hooks/{hook_id}", json={"active": True})
        assert patched.status_code == 200

        opened = await api.post(
            "/repos/octo/demo/pulls",
            json={"title": "Two", "head": "feature", "base": "main", "body": "Makes x two"},
        )
        assert opened.status_code == 201, opened.text
        number = opened.json()["number"]
        again = await api.post(
            "/repos/octo/demo/pulls", json={"title": "Two", "head": "feature", "base": "main"}
        )
        assert again.status_code == 422 and again.json()["errors"][0]["message"].startswith(
            "A pull request already exists"
        )
        nothing = await api.post(
            "/repos/octo/demo/pulls", json={"title": "x", "head": "main", "base": "main"}
        )
        assert nothing.status_code == 422
        assert nothing.json()["errors"][0]["message"] == "No commits between main and main"
        listing = await api.get("/repos/octo/demo/pulls", params={"head": "octo:feature"})
        assert [p["number"] for p in listing.json()] == [number]
        pull = (await api.get(f"/repos/octo/demo/pulls/{number}")).json()
        assert pull["mergeable"] is True and pull["mergeable_state"] == "clean"
        assert pull["head"]["ref"] == "feature" and pull["base"]["ref"] == "main"
        edited = await api.patch(f"/repos/octo/demo/pulls/{number}", json={"title": "Two!"})
        assert edited.json()["title"] == "Two!"

        sha = pull["head"]["sha"]
        status = await api.post(
            f"/repos/octo/demo/statuses/{sha}",
            json={"state": "pending", "context": "genway", "description": "checking"},
        )
        assert status.status_code == 201
        statuses = (await api.get("/repos/octo/demo/commits/feature/statuses")).json()
        assert [s["state"] for s in statuses] == ["pending"]
        assert [s.context for s in gh.statuses("octo", "demo", sha)] == ["genway"]
        refused = await api.post(
            "/repos/octo/demo/check-runs", json={"name": "genway", "head_sha": sha}
        )
        assert refused.status_code == 403
        assert refused.json()["message"] == "Resource not accessible by personal access token"
        comment = await api.post(
            f"/repos/octo/demo/issues/{number}/comments", json={"body": "Looks good"}
        )
        assert comment.status_code == 201
        assert [c.body for c in gh.comments("octo", "demo", number)] == ["Looks good"]

        conflict = await api.put(f"/repos/octo/demo/pulls/{number}/merge", json={"sha": "0" * 40})
        assert conflict.status_code == 409
        merged = await api.put(
            f"/repos/octo/demo/pulls/{number}/merge", json={"merge_method": "squash", "sha": sha}
        )
        assert merged.status_code == 200 and merged.json()["merged"] is True
        not_again = await api.put(f"/repos/octo/demo/pulls/{number}/merge", json={})
        assert not_again.status_code == 405
        deleted = await api.delete(f"/repos/octo/demo/hooks/{hook_id}")
        assert deleted.status_code == 204 and gh.hooks("octo", "demo") == []

        assert (await api.get("/repos/octo/nope")).status_code == 404
        assert (await api.get("/nowhere")).json()["message"] == "Not Found"
    async with httpx.AsyncClient(base_url=gh.api_url) as anonymous:
        assert (await anonymous.get("/repos/octo/secret")).status_code == 404
        bad = await anonymous.get("/user", headers=auth("github_pat_wrong"))
        assert bad.status_code == 401 and bad.json()["message"] == "Bad credentials"
    assert gh.read_file("octo", "demo", "main", "src/app.py") == "x = 2\n"
    assert gh.pulls("octo", "demo")[0].merged and gh.pulls("octo", "demo")[0].state == "closed"
    for record in gh.requests:
        assert record.auth_kind in ("token", None)
    assert all(record.path.startswith("/") for record in gh.requests)


async def test_headers_and_rate_limits(gh: FakeGitHub) -> None:
    token = gh.add_user("octo")
    async with httpx.AsyncClient(base_url=gh.api_url, headers=auth(token)) as api:
        ok = await api.get("/user")
        for name in ("limit", "remaining", "reset", "used", "resource"):
            assert f"x-ratelimit-{name}" in ok.headers
        assert ok.headers["x-github-api-version-selected"] == "2022-11-28"
        assert ok.headers["x-github-request-id"]
        gh.rate_limit_next(kind="secondary", retry_after=7)
        secondary = await api.get("/user")
        assert secondary.status_code == 403 and secondary.headers["retry-after"] == "7"
        assert "secondary rate limit" in secondary.json()["message"]
        gh.rate_limit_next(count=2, kind="primary", retry_after=60)
        for _ in range(2):
            primary = await api.get("/user")
            assert primary.status_code == 403
            assert primary.headers["x-ratelimit-remaining"] == "0"
            assert int(primary.headers["x-ratelimit-reset"]) >= time.time() + 50
        assert (await api.get("/user")).status_code == 200


async def test_app_jwt_installation_tokens_and_check_runs(gh: FakeGitHub) -> None:
    gh.add_user("octo")
    gh.create_repo("octo", "demo", private=True)
    gh.create_repo("octo", "other", private=True)
    app_id, key = gh.add_app("genway-app")
    installation_id = gh.install_app(app_id, "octo", repos=["demo"])
    async with httpx.AsyncClient(base_url=gh.api_url) as api:
        bearer = auth(app_jwt(app_id, key))
        shown = (await api.get("/app", headers=bearer)).json()
        assert shown["id"] == app_id
        by_client_id = auth(app_jwt(app_id, key, iss=shown["client_id"]))
        assert (await api.get("/app", headers=by_client_id)).status_code == 200
        by_int = auth(app_jwt(app_id, key, iss=app_id))
        assert (await api.get("/app", headers=by_int)).status_code == 200
        found = await api.get("/repos/octo/demo/installation", headers=bearer)
        assert found.json()["id"] == installation_id
        assert (await api.get("/repos/octo/other/installation", headers=bearer)).status_code == 404
        too_long = auth(app_jwt(app_id, key, exp=int(time.time()) + 3600))
        assert (await api.get("/app", headers=too_long)).status_code == 401
        _, other_key = gh.add_app("impostor")
        forged = auth(app_jwt(app_id, other_key))
        assert (await api.get("/app", headers=forged)).status_code == 401
        made = await api.post(f"/app/installations/{installation_id}/access_tokens", headers=bearer)
        assert made.status_code == 201
        token = made.json()["token"]
        assert token.startswith("ghs_") and made.json()["expires_at"].endswith("Z")

        installed = auth(token)
        repos = (await api.get("/installation/repositories", headers=installed)).json()
        assert repos["total_count"] == 1 and repos["repositories"][0]["name"] == "demo"
        assert (await api.get("/repos/octo/other", headers=installed)).status_code == 404
        sha = gh.branch_sha("octo", "demo", "main")
        created = await api.post(
            "/repos/octo/demo/check-runs",
            headers=installed,
            json={"name": "genway/validate", "head_sha": sha, "status": "in_progress"},
        )
        assert created.status_code == 201, created.text
        run_id = created.json()["id"]
        updated = await api.patch(
            f"/repos/octo/demo/check-runs/{run_id}",
            headers=installed,
            json={"conclusion": "success", "output": {"title": "OK", "summary": "All good"}},
        )
        assert updated.status_code == 200 and updated.json()["status"] == "completed"
        (run,) = gh.check_runs("octo", "demo")
        assert (run.name, run.head_sha, run.conclusion) == ("genway/validate", sha, "success")
        assert run.output["summary"] == "All good"

        gh.installation_token_ttl_s = 0
        made = await api.post(f"/app/installations/{installation_id}/access_tokens", headers=bearer)
        expired = await api.get("/installation/repositories", headers=auth(made.json()["token"]))
        assert expired.status_code == 401
    assert {r.auth_kind for r in gh.requests} == {"app_jwt", "installation", None}


async def test_git_binary_clone_push_fetch_and_webhooks(
    gh: FakeGitHub, receiver: Receiver, tmp_path: Path
) -> None:
    token = gh.add_user("octo")
    repo = gh.create_repo("octo", "demo", {"README.md": "hi\n"}, private=True)
    async with httpx.AsyncClient(base_url=gh.api_url, headers=auth(token)) as api:
        response = await api.post(
            "/repos/octo/demo/hooks",
            json={
                "config": {"url": receiver.url, "secret": "s3cret", "content_type": "json"},
                "events": ["*"],
            },
        )
        assert response.status_code == 201
    ping = await gh.wait_for_delivery("ping")
    assert ping.status == 202 and ping.payload["hook_id"] == ping.hook_id
    headers, body = receiver.received[0]
    assert headers["x-github-event"] == "ping"
    assert headers["x-hub-signature-256"] == sign_webhook("s3cret", body)
    expected_sha1 = hmac.new(b"s3cret", body, hashlib.sha1).hexdigest()
    assert headers["x-hub-signature"] == f"sha1={expected_sha1}"
    assert headers["user-agent"].startswith("GitHub-Hookshot/")
    assert headers["x-github-hook-installation-target-id"] == str(repo.id)
    assert headers["x-github-hook-installation-target-type"] == "repository"
    assert json.loads(body) == ping.payload

    work = tmp_path / "work"
    anonymous = await asyncio.to_thread(
        subprocess.run,
        ["git", "clone", repo.clone_url, str(tmp_path / "anon")],
        capture_output=True,
        check=False,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
    )
    assert anonymous.returncode != 0
    await asyncio.to_thread(git, "clone", with_token(repo.clone_url, token), str(work))
    (work / "fix.py").write_text("print('fixed')\n")
    await asyncio.to_thread(git, "checkout", "-b", "fix", cwd=work)
    await asyncio.to_thread(git, "add", ".", cwd=work)
    await asyncio.to_thread(git, "commit", "-m", "Fix it", cwd=work)
    await asyncio.to_thread(git, "push", "origin", "fix", cwd=work)
    pushed = await gh.wait_for_delivery(
        "push", predicate=lambda d: d.payload["ref"] == "refs/heads/fix"
    )
    assert pushed.payload["created"] is True
    assert pushed.payload["head_commit"]["added"] == ["fix.py"]
    assert pushed.payload["pusher"]["name"] == "octo"
    assert gh.read_file("octo", "demo", "fix", "fix.py") == "print('fixed')\n"

    number = await gh.open_pull("octo", "demo", head="fix", base="main", title="Fix", user="alice")
    opened = await gh.wait_for_delivery("pull_request", "opened")
    assert opened.payload["pull_request"]["number"] == number
    assert opened.payload["pull_request"]["user"]["login"] == "alice"
    assert opened.payload["repository"]["full_name"] == "octo/demo"

    (work / "fix.py").write_text("print('fixed twice')\n")
    await asyncio.to_thread(git, "commit", "-am", "Again", cwd=work)
    await asyncio.to_thread(git, "push", "origin", "fix", cwd=work)
    synced = await gh.wait_for_delivery("pull_request", "synchronize")
    head = gh.branch_sha("octo", "demo", "fix")
    assert synced.payload["after"] == head == gh.pulls("octo", "demo")[0].head_sha
    assert gh.read_file("octo", "demo", f"refs/pull/{number}/head", "fix.py") == (
        "print('fixed twice')\n"
    )
    await asyncio.to_thread(git, "fetch", "origin", f"refs/pull/{number}/head", cwd=work)
    fetched = await asyncio.to_thread(git, "rev-parse", "FETCH_HEAD", cwd=work)
    assert fetched.strip() == head

    await gh.comment("octo", "demo", number, "/genway fix the failing test", user="alice")
    commented = await gh.wait_for_delivery("issue_comment", "created")
    assert commented.payload["comment"]["body"] == "/genway fix the failing test"
    assert commented.payload["issue"]["pull_request"]["url"].endswith(f"/pulls/{number}")


async def test_public_repo_fetches_anonymously_but_never_pushes(
    gh: FakeGitHub, tmp_path: Path
) -> None:
    token = gh.add_user("octo")
    repo = gh.create_repo("octo", "demo", {"README.md": "hi\n"})
    work = tmp_path / "anon"
    await asyncio.to_thread(git, "clone", repo.clone_url, str(work))
    assert (work / "README.md").read_text() == "hi\n"
    (work / "x.txt").write_text("x\n")
    await asyncio.to_thread(git, "add", ".", cwd=work)
    await asyncio.to_thread(git, "commit", "-m", "x", cwd=work)
    push = await asyncio.to_thread(
        subprocess.run,
        ["git", "push", "origin", "HEAD:refs/heads/x"],
        cwd=work,
        capture_output=True,
        check=False,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
    )
    assert push.returncode != 0 and gh.branch_sha("octo", "demo", "x") is None
    stranger = gh.add_user("mallory")
    push_url = with_token(repo.clone_url, stranger)
    denied = await asyncio.to_thread(
        subprocess.run,
        ["git", "push", push_url, "HEAD:refs/heads/x"],
        cwd=work,
        capture_output=True,
        check=False,
        env={"GIT_TERMINAL_PROMPT": "0", "PATH": "/usr/bin:/bin"},
    )
    assert denied.returncode != 0 and gh.branch_sha("octo", "demo", "x") is None
    await asyncio.to_thread(
        git, "push", with_token(repo.clone_url, token), "HEAD:refs/heads/x", cwd=work
    )
    assert gh.branch_sha("octo", "demo", "x") is not None


async def test_libgit2_clone_push_fetch(gh: FakeGitHub, tmp_path: Path) -> None:
    gh.add_user("octo")
    gh.create_repo("octo", "demo", {"README.md": "hi\n"}, private=True)
    app_id, key = gh.add_app("genway-app")
    installation_id = gh.install_app(app_id, "octo", repos=["demo"])
    async with httpx.AsyncClient(base_url=gh.api_url) as api:
        made = await api.post(
            f"/app/installations/{installation_id}/access_tokens",
            headers=auth(app_jwt(app_id, key)),
        )
    token = made.json()["token"]
    callbacks = pygit2.RemoteCallbacks(credentials=pygit2.UserPass("x-access-token", token))
    clone_url = f"{gh.url}/octo/demo.git"

    def clone_commit_push() -> str:
        local = pygit2.clone_repository(clone_url, str(tmp_path / "lg2"), callbacks=callbacks)
        blob = local.create_blob(b"agent work\n")
        builder = local.TreeBuilder(local.head.peel(pygit2.Commit).tree)
        builder.insert("agent.txt", blob, pygit2.enums.FileMode.BLOB)
        signature = pygit2.Signature("agent", "agent@example.com")
        oid = local.create_commit(
            "refs/heads/genway/run-1",
            signature,
            signature,
            "Agent work",
            builder.write(),
            [local.head.target],
        )
        local.remotes["origin"].push(["refs/heads/genway/run-1"], callbacks=callbacks)
        local.remotes["origin"].fetch(callbacks=callbacks)
        return str(oid)

    sha = await asyncio.to_thread(clone_commit_push)
    assert gh.branch_sha("octo", "demo", "genway/run-1") == sha
    assert gh.read_file("octo", "demo", sha, "agent.txt") == "agent work\n"

    def push_without_credentials() -> None:
        local = pygit2.Repository(str(tmp_path / "lg2"))
        local.remotes["origin"].push(["refs/heads/genway/run-1:refs/heads/other"])

    with pytest.raises(pygit2.GitError):
        await asyncio.to_thread(push_without_credentials)


async def test_merge_methods_conflicts_and_human_pushes(gh: FakeGitHub, receiver: Receiver) -> None:
    token = gh.add_user("octo")
    gh.create_repo("octo", "demo", {"a.txt": "one\n", "b.txt": "b\n"})
    for branch in ("m", "s", "r"):
        gh.push_files("octo", "demo", branch, {f"{branch}.txt": branch}, message=f"Add {branch}")
        gh.push_files("octo", "demo", branch, {f"{branch}2.txt": branch}, message="More")
    gh.push_files("octo", "demo", "clash", {"a.txt": "clash\n"})
    gh.push_files("octo", "demo", "main", {"a.txt": "main\n"})
    async with httpx.AsyncClient(base_url=gh.api_url, headers=auth(token)) as api:
        hook = await api.post(
            "/repos/octo/demo/hooks",
            json={"config": {"url": receiver.url, "content_type": "json"}, "events": ["*"]},
        )
        assert hook.status_code == 201
        numbers = {}
        for branch in ("m", "s", "r", "clash"):
            numbers[branch] = await gh.open_pull("octo", "demo", head=branch, base="main")
        clash = (await api.get(f"/repos/octo/demo/pulls/{numbers['clash']}")).json()
        assert clash["mergeable"] is False and clash["mergeable_state"] == "dirty"
        refused = await api.put(f"/repos/octo/demo/pulls/{numbers['clash']}/merge", json={})
        assert refused.status_code == 405

        gh.push_files("octo", "demo", "m", {"m3.txt": "m"}, message="Third", author="alice")
        synced = await gh.wait_for_delivery("pull_request", "synchronize")
        assert synced.payload["sender"]["login"] == "alice"
        assert synced.payload["after"] == gh.branch_sha("octo", "demo", "m")

        for branch, method in (("m", "merge"), ("s", "squash"), ("r", "rebase")):
            before = gh.branch_sha("octo", "demo", "main")
            merged = await api.put(
                f"/repos/octo/demo/pulls/{numbers[branch]}/merge", json={"merge_method": method}
            )
            assert merged.status_code == 200, merged.text
            after = gh.branch_sha("octo", "demo", "main")
            assert merged.json()["sha"] == after != before
            assert gh.read_file("octo", "demo", "main", f"{branch}2.txt") == branch
            closed = await gh.wait_for_delivery(
                "pull_request",
                "closed",
                predicate=lambda d, n=numbers[branch]: d.payload["number"] == n,
            )
            assert closed.payload["pull_request"]["merged"] is True
            await gh.wait_for_delivery(
                "push", predicate=lambda d, sha=after: d.payload["after"] == sha
            )
        pulls = gh.pulls("octo", "demo")
        assert [(p.merged, p.merge_method, p.state) for p in pulls[:3]] == [
            (True, "merge", "closed"),
            (True, "squash", "closed"),
            (True, "rebase", "closed"),
        ]
        listed = await api.get("/repos/octo/demo/pulls", params={"state": "all", "per_page": 2})
        assert len(listed.json()) == 2 and 'rel="last"' in listed.headers["link"]
        still_open = (await api.get("/repos/octo/demo/pulls")).json()
        assert [p["number"] for p in still_open] == [numbers["clash"]]
    assert all(d.status == 202 for d in gh.deliveries)


async def test_unreachable_hook_is_recorded(gh: FakeGitHub) -> None:
    token = gh.add_user("octo")
    gh.create_repo("octo", "demo")
    async with httpx.AsyncClient(base_url=gh.api_url, headers=auth(token)) as api:
        await api.post(
            "/repos/octo/demo/hooks", json={"config": {"url": "http://127.0.0.1:9/nowhere"}}
        )
    ping = await gh.wait_for_delivery("ping", timeout=5)
    assert ping.status is None and ping.response_body is None


async def test_webhook_example_and_signature_helpers(gh: FakeGitHub) -> None:
    example = webhook_example("pull_request", "opened")
    assert example["action"] == "opened" and "pull_request" in example
    example["action"] = "changed"
    assert webhook_example("pull_request", "opened")["action"] == "opened"
    assert webhook_example("push")["ref"].startswith("refs/")
    with pytest.raises(KeyError):
        webhook_example("no_such_event")
    body = b'{"zen":"hi"}'
    digest = hmac.new(b"key", body, hashlib.sha256).hexdigest()
    assert sign_webhook("key", body) == f"sha256={digest}"


def test_missing_npm_is_reported(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("GENWAY_TEST_NPM_CACHE", str(tmp_path / "cache"))
    monkeypatch.setenv("PATH", str(tmp_path))
    with pytest.raises(NpmUnavailable, match="npm is not installed"):
        webhook_examples_file()

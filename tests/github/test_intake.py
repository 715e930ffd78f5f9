"""`POST /api/v1/webhooks/github`: GitHub's real example payloads (@octokit/webhooks-examples),
signed with the pinned project's secret, are taken; a bad signature, a replayed delivery, an
unknown repository or hook and an oversize body are refused with clear codes and change
nothing."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx

from genway.config import Settings
from tests.agent_support import org_url
from tests.fakes.github import FakeGitHub, sign_webhook, webhook_example
from tests.github.conftest import pinned_project
from tests.support import Tenant

PATH = "/api/v1/webhooks/github"


def delivery(
    github: FakeGitHub,
    event: str,
    payload: dict[str, Any],
    *,
    secret: str | None = None,
    delivery_id: str | None = None,
) -> tuple[bytes, dict[str, str]]:
    hook = github.hooks("octo", "demo")[0]
    body = json.dumps(payload).encode()
    headers = {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": delivery_id or str(uuid.uuid4()),
        "X-GitHub-Hook-ID": str(hook.id),
        "X-Hub-Signature-256": sign_webhook(secret or hook.secret, body),
        "Content-Type": "application/json",
        "User-Agent": "GitHub-Hookshot/test",
    }
    return body, headers


def for_demo(github: FakeGitHub, payload: dict[str, Any]) -> dict[str, Any]:
    """A real example payload, about octo/demo (the repository object GitHub sent with its
    ping to the pinned project's hook)."""
    hook = github.hooks("octo", "demo")[0]
    ping = next(d for d in github.deliveries if d.event == "ping" and d.hook_id == hook.id)
    payload["repository"] = ping.payload["repository"]
    return payload


async def deliveries_of(client: httpx.AsyncClient, tenant: Tenant) -> list[dict[str, Any]]:
    answer = await client.get(org_url(tenant, "/github/deliveries"), headers=tenant.headers)
    assert answer.status_code == 200
    return list(answer.json()["items"])


async def test_a_real_pull_request_delivery_queues_a_validation(
    client: httpx.AsyncClient, tenant: Tenant, github: FakeGitHub, octo: str
) -> None:
    project = await pinned_project(client, tenant, octo, test_commands=["true"])
    await github.wait_for_delivery("ping")
    payload = for_demo(github, webhook_example("pull_request", "opened"))
    payload["pull_request"]["draft"] = False
    body, headers = delivery(github, "pull_request", payload)
    answer = await client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 202, answer.text
    receipt = answer.json()
    assert receipt["outcome"] == "validation_queued" and receipt["project_id"] == project["id"]
    validation = await client.get(
        org_url(tenant, f"/validations/{receipt['validation_id']}"), headers=tenant.headers
    )
    assert validation.status_code == 200
    number = payload["pull_request"]["number"]
    assert validation.json()["pr_number"] == number
    assert validation.json()["head_sha"] == payload["pull_request"]["head"]["sha"]
    pulls = await client.get(
        org_url(tenant, f"/projects/{project['id']}/pulls"), headers=tenant.headers
    )
    assert [p["number"] for p in pulls.json()["items"]] == [number]

    replay = await client.post(PATH, content=body, headers=headers)
    assert replay.status_code == 409 and replay.json()["code"] == "duplicate_delivery"
    logged = await deliveries_of(client, tenant)
    assert [d["delivery_id"] for d in logged].count(headers["X-GitHub-Delivery"]) == 1
    assert {d["event"] for d in logged} == {"ping", "pull_request"}
    listed = await client.get(org_url(tenant, "/validations"), headers=tenant.headers)
    assert listed.json()["total"] == 1  # the replay queued nothing


async def test_refused_deliveries_change_nothing(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, github: FakeGitHub, octo: str
) -> None:
    await pinned_project(client, tenant, octo)
    await github.wait_for_delivery("ping")
    payload = for_demo(github, webhook_example("pull_request", "opened"))

    body, headers = delivery(github, "pull_request", payload, secret="not-the-secret")
    forged = await client.post(PATH, content=body, headers=headers)
    assert forged.status_code == 401 and forged.json()["code"] == "bad_signature"

    body, headers = delivery(github, "pull_request", payload)
    unsigned = await client.post(
        PATH, content=body, headers={k: v for k, v in headers.items() if "Signature" not in k}
    )
    assert unsigned.status_code == 401 and unsigned.json()["code"] == "signature_missing"

    elsewhere = webhook_example("pull_request", "opened")  # the example's own repository
    body, headers = delivery(github, "pull_request", elsewhere)
    unknown = await client.post(PATH, content=body, headers=headers)
    assert unknown.status_code == 404 and unknown.json()["code"] == "unknown_repository"

    body, headers = delivery(github, "pull_request", payload)
    headers["X-GitHub-Hook-ID"] = "999999999"
    no_hook = await client.post(PATH, content=body, headers=headers)
    assert no_hook.status_code == 404 and no_hook.json()["code"] == "unknown_hook"

    big = settings.github_webhook_max_bytes + 1
    oversize = await client.post(PATH, content=b"{" + b" " * big + b"}", headers=headers)
    assert oversize.status_code == 413

    logged = await deliveries_of(client, tenant)
    assert [d["event"] for d in logged] == ["ping"]
    validations = await client.get(org_url(tenant, "/validations"), headers=tenant.headers)
    assert validations.json()["total"] == 0


async def test_closing_and_comments(
    client: httpx.AsyncClient, tenant: Tenant, github: FakeGitHub, octo: str
) -> None:
    project = await pinned_project(client, tenant, octo)
    await github.wait_for_delivery("ping")
    opened = for_demo(github, webhook_example("pull_request", "opened"))
    body, headers = delivery(github, "pull_request", opened)
    assert (await client.post(PATH, content=body, headers=headers)).status_code == 202

    closed = for_demo(github, webhook_example("pull_request", "closed"))
    closed["pull_request"]["number"] = opened["pull_request"]["number"]
    body, headers = delivery(github, "pull_request", closed)
    answer = await client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 200, answer.text
    merged = bool(closed["pull_request"].get("merged"))
    assert answer.json()["outcome"] == ("pull_request_merged" if merged else "pull_request_closed")
    pulls = await client.get(
        org_url(tenant, f"/projects/{project['id']}/pulls"), headers=tenant.headers
    )
    assert pulls.json()["items"][0]["state"] == ("merged" if merged else "closed")

    # A `/genway fix` comment on a pull request no Genway agent opened starts nothing.
    comment = for_demo(github, webhook_example("issue_comment", "created"))
    comment["issue"]["number"] = opened["pull_request"]["number"]
    comment["issue"]["pull_request"] = {"url": "x"}
    comment["comment"]["body"] = "/genway fix the tests"
    comment["comment"]["author_association"] = "OWNER"
    body, headers = delivery(github, "issue_comment", comment)
    answer = await client.post(PATH, content=body, headers=headers)
    assert answer.status_code == 200
    assert answer.json()["outcome"] == "fix_refused_not_a_genway_pull_request"

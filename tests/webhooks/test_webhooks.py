"""Webhook endpoints and per-job webhooks, delivered to a real receiver on 127.0.0.1 and
verified with the `standardwebhooks` library."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from genway.auth.permissions import Role
from genway.config import Settings
from tests.support import Tenant
from tests.webhooks.receiver import Receiver, settled_delivery


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "embedded_worker": True,
            "webhook_allow_private": True,
            "webhook_allow_http": True,
            "webhook_retry_schedule_s": [0.1, 0.1, 0.1],
            "webhook_poll_s": 0.1,
        }
    )


def hooks_url(tenant: Tenant) -> str:
    return f"/v1/organizations/{tenant.org_id}/webhooks"


async def add_endpoint(
    client: httpx.AsyncClient, tenant: Tenant, url: str, **body: Any
) -> dict[str, Any]:
    response = await client.post(
        hooks_url(tenant), json={"url": url, **body}, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    return dict(response.json())


async def run_job(client: httpx.AsyncClient, tenant: Tenant, **body: Any) -> dict[str, Any]:
    body.setdefault("kind", "diagnostic.sleep")
    body.setdefault("input", {"seconds": 0})
    response = await client.post(
        f"/v1/organizations/{tenant.org_id}/jobs", json=body, headers=tenant.headers
    )
    assert response.status_code == 201, response.text
    job = response.json()
    async with asyncio.timeout(20):
        while job["status"] not in ("succeeded", "failed", "cancelled"):
            await asyncio.sleep(0.05)
            job = (
                await client.get(
                    f"/v1/organizations/{tenant.org_id}/jobs/{job['id']}", headers=tenant.headers
                )
            ).json()
    return dict(job)


async def test_an_endpoint_receives_signed_job_events_that_verify(
    client: httpx.AsyncClient, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    endpoint = await add_endpoint(
        client, tenant, f"{base}/org", event_types=["job.succeeded", "job.queued"]
    )
    assert endpoint["secret"].startswith("whsec_")
    listed = (await client.get(hooks_url(tenant), headers=tenant.headers)).json()
    assert "secret" not in listed["items"][0]

    job = await run_job(client, tenant)
    got = await hooks.wait_for("org", 2)
    verifier = Webhook(endpoint["secret"])
    payloads = [verifier.verify(r.body, r.headers) for r in got]
    assert [p["type"] for p in payloads] == ["job.queued", "job.succeeded"]
    assert payloads[1]["data"]["id"] == job["id"]
    assert payloads[1]["data"]["status"] == "succeeded"
    assert payloads[0]["data"]["status"] == "queued"  # the job as it was at that event
    assert len({r.headers["webhook-id"] for r in got}) == 2

    tampered = got[1].body.replace('"succeeded"', '"failed"')
    with pytest.raises(WebhookVerificationError):
        verifier.verify(tampered, got[1].headers)
    old = dict(got[1].headers)
    stamp = datetime.now(UTC) - timedelta(minutes=10)
    old["webhook-timestamp"] = str(int(stamp.timestamp()))
    old["webhook-signature"] = verifier.sign(old["webhook-id"], stamp, got[1].body)
    with pytest.raises(WebhookVerificationError):
        verifier.verify(got[1].body, old)


async def test_a_per_job_webhook_gets_only_the_events_it_asked_for(
    client: httpx.AsyncClient, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    job = await run_job(client, tenant, webhook=f"{base}/job", webhook_events_filter=["completed"])
    assert job["webhook"] == f"{base}/job"
    assert job["webhook_events_filter"] == ["completed"]
    got = await hooks.wait_for("job", 1)
    secret = (
        await client.get(f"{hooks_url(tenant)}/default/secret", headers=tenant.headers)
    ).json()["secret"]
    payload = Webhook(secret).verify(got[0].body, got[0].headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["id"] == job["id"]
    await run_job(client, tenant, webhook=f"{base}/all")  # default: start and completed too
    types = [r.json["type"] for r in await hooks.wait_for("all", 2)]
    assert types == ["job.started", "job.succeeded"]
    await asyncio.sleep(0.3)
    assert len(hooks.at("job")) == 1  # no start, no other event


async def test_failures_are_retried_with_the_same_id_and_every_attempt_is_logged(
    client: httpx.AsyncClient, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    hooks.script["flaky"] = [500, 500]
    endpoint = await add_endpoint(client, tenant, f"{base}/flaky", event_types=["job.succeeded"])
    await run_job(client, tenant)
    got = await hooks.wait_for("flaky", 3)
    assert len({r.headers["webhook-id"] for r in got}) == 1
    url = f"{hooks_url(tenant)}/{endpoint['id']}/deliveries"
    async with asyncio.timeout(10):
        while True:
            page = (await client.get(url, headers=tenant.headers)).json()
            if page["items"] and page["items"][0]["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
    delivery = page["items"][0]
    assert delivery["attempts"] == 3
    assert [a["status_code"] for a in delivery["attempt_log"]] == [500, 500, 200]
    assert all(a["latency_ms"] >= 0 for a in delivery["attempt_log"])
    assert delivery["attempt_log"][2]["response_excerpt"] == "ok"

    redelivered = await client.post(f"{url}/{delivery['id']}/redeliver", headers=tenant.headers)
    assert redelivered.status_code == 202, redelivered.text
    again = await hooks.wait_for("flaky", 4)
    assert again[3].headers["webhook-id"] == got[0].headers["webhook-id"]


async def test_a_final_answer_is_not_retried_and_a_ping_tests_the_endpoint(
    client: httpx.AsyncClient, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    hooks.script["gone"] = [410]
    endpoint = await add_endpoint(client, tenant, f"{base}/gone")
    ping = await client.post(f"{hooks_url(tenant)}/{endpoint['id']}/test", headers=tenant.headers)
    assert ping.status_code == 202, ping.text
    got = await hooks.wait_for("gone", 1)
    assert Webhook(endpoint["secret"]).verify(got[0].body, got[0].headers)["type"] == "ping"
    url = f"{hooks_url(tenant)}/{endpoint['id']}/deliveries/{ping.json()['id']}"
    delivery = await settled_delivery(client, url, tenant.headers)
    assert delivery["status"] == "failed"
    assert delivery["attempts"] == 1
    assert "final" in delivery["last_error"]


async def test_a_rotated_secret_signs_beside_the_new_one(
    client: httpx.AsyncClient, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    endpoint = await add_endpoint(client, tenant, f"{base}/rot")
    rotated = await client.post(
        f"{hooks_url(tenant)}/{endpoint['id']}/rotate-secret", headers=tenant.headers
    )
    assert rotated.status_code == 200
    new = rotated.json()["secret"]
    assert new != endpoint["secret"] and rotated.json()["previous_secret_expires_at"]
    await client.post(f"{hooks_url(tenant)}/{endpoint['id']}/test", headers=tenant.headers)
    got = await hooks.wait_for("rot", 1)
    Webhook(new).verify(got[0].body, got[0].headers)
    Webhook(endpoint["secret"]).verify(got[0].body, got[0].headers)


async def test_endpoint_changes_are_checked(
    client: httpx.AsyncClient, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    _hooks, base = receiver
    bad = await client.post(
        hooks_url(tenant),
        json={"url": f"{base}/x", "event_types": ["jobs.*"]},
        headers=tenant.headers,
    )
    assert bad.status_code == 422 and "jobs.*" in bad.text
    endpoint = await add_endpoint(client, tenant, f"{base}/x", event_types=["job.*"])
    url = f"{hooks_url(tenant)}/{endpoint['id']}"
    patched = await client.patch(
        url, json={"enabled": False, "description": "paused"}, headers=tenant.headers
    )
    assert patched.status_code == 200 and patched.json()["enabled"] is False
    assert (
        await client.patch(url, json={"url": "ftp://x"}, headers=tenant.headers)
    ).status_code == 422
    assert (await client.delete(url, headers=tenant.headers)).status_code == 204
    assert (await client.get(url, headers=tenant.headers)).status_code == 404


async def test_another_organization_cannot_see_or_touch_an_endpoint(
    client: httpx.AsyncClient,
    tenant: Tenant,
    other_tenant: Tenant,
    receiver: tuple[Receiver, str],
) -> None:
    _hooks, base = receiver
    endpoint = await add_endpoint(client, tenant, f"{base}/mine")
    ping = await client.post(f"{hooks_url(tenant)}/{endpoint['id']}/test", headers=tenant.headers)
    mine = f"{hooks_url(tenant)}/{endpoint['id']}"
    theirs = f"{hooks_url(other_tenant)}/{endpoint['id']}"
    delivery = f"deliveries/{ping.json()['id']}"
    for method, path in [
        ("GET", mine),
        ("PATCH", mine),
        ("DELETE", mine),
        ("POST", f"{mine}/test"),
        ("POST", f"{mine}/rotate-secret"),
        ("GET", f"{mine}/deliveries"),
        ("GET", f"{mine}/{delivery}"),
        ("POST", f"{mine}/{delivery}/redeliver"),
        ("GET", f"{hooks_url(tenant)}/default/secret"),
    ]:
        response = await client.request(
            method, path, headers=other_tenant.headers, json={} if method == "PATCH" else None
        )
        assert response.status_code == 404, (method, path, response.text)
        assert "mine" not in response.text
    for method, path in [("GET", theirs), ("GET", f"{theirs}/deliveries")]:
        response = await client.request(method, path, headers=other_tenant.headers)
        assert response.status_code == 404
    listed = (await client.get(hooks_url(other_tenant), headers=other_tenant.headers)).json()
    assert listed["items"] == []
    _member, member_key = await tenant.add_member(Role.MEMBER)
    forbidden = await client.get(
        hooks_url(tenant), headers={"Authorization": f"Bearer {member_key}"}
    )
    assert forbidden.status_code == 403


async def test_an_endpoint_failing_for_the_whole_schedule_is_disabled_and_admins_told(
    client: httpx.AsyncClient, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    hooks.script["down"] = [500] * 10
    endpoint = await add_endpoint(client, tenant, f"{base}/down", event_types=["job.succeeded"])
    await run_job(client, tenant)
    url = f"{hooks_url(tenant)}/{endpoint['id']}"
    async with asyncio.timeout(20):
        while (await client.get(url, headers=tenant.headers)).json()["enabled"]:
            await asyncio.sleep(0.05)
    disabled = (await client.get(url, headers=tenant.headers)).json()
    assert "whole retry schedule" in disabled["disabled_reason"]
    assert len(hooks.at("down")) == 4  # the first try and the three retries of the schedule
    deliveries = (await client.get(f"{url}/deliveries", headers=tenant.headers)).json()
    assert deliveries["items"][0]["status"] == "failed"
    assert deliveries["items"][0]["attempts"] == 4
    events = await client.get(
        f"/v1/organizations/{tenant.org_id}/events",
        params={"types": "webhook.endpoint.disabled"},
        headers=tenant.headers,
    )
    assert [e["data"]["id"] for e in events.json()["items"]] == [endpoint["id"]]
    notes = (await client.get("/v1/users/me/notifications", headers=tenant.headers)).json()
    assert any(n["kind"] == "webhook_disabled" for n in notes["items"]), notes

    await run_job(client, tenant)  # a disabled endpoint gets nothing more
    await asyncio.sleep(0.5)
    assert len(hooks.at("down")) == 4
    enabled = await client.patch(url, json={"enabled": True}, headers=tenant.headers)
    assert enabled.json()["enabled"] is True and enabled.json()["disabled_reason"] is None

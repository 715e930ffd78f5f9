"""Each event reaches an endpoint once (barring retries), however many jobs finish."""

from __future__ import annotations

import asyncio

import httpx
import pytest

from genway.config import Settings
from tests.support import Tenant
from tests.webhooks.receiver import Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={
            "embedded_worker": True,
            "worker_concurrency": 8,
            "webhook_allow_private": True,
            "webhook_allow_http": True,
            "webhook_poll_s": 0.2,
        }
    )


async def test_a_thousand_completions_are_each_delivered_once(
    client: httpx.AsyncClient, tenant: Tenant, receiver: tuple[Receiver, str]
) -> None:
    hooks, base = receiver
    endpoint = await client.post(
        f"/v1/organizations/{tenant.org_id}/webhooks",
        json={"url": f"{base}/many", "event_types": ["job.succeeded"]},
        headers=tenant.headers,
    )
    assert endpoint.status_code == 201
    jobs_url = f"/v1/organizations/{tenant.org_id}/jobs"
    body = {"kind": "diagnostic.sleep", "input": {"seconds": 0}}
    ids: set[int] = set()
    for _ in range(20):
        responses = await asyncio.gather(
            *(client.post(jobs_url, json=body, headers=tenant.headers) for _ in range(50))
        )
        ids.update(r.json()["id"] for r in responses)
    assert len(ids) == 1000
    got = await hooks.wait_for("many", 1000, timeout=240)
    await asyncio.sleep(0.5)  # anything extra would have arrived by now
    got = hooks.at("many")
    assert len({r.headers["webhook-id"] for r in got}) == 1000
    assert len(got) == 1000
    assert {r.json["data"]["id"] for r in got} == ids

"""Webhook targets on private addresses are refused unless the deployment allows them."""

from __future__ import annotations

import httpx
import pytest

from genway.config import Settings
from genway.db import Database
from genway.webhooks.models import WebhookEndpoint
from genway.webhooks.signing import new_secret
from genway.webhooks.targets import TargetRefused, check_target
from tests.support import Tenant
from tests.webhooks.receiver import settled_delivery


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(
        update={"webhook_allow_http": True, "embedded_worker": True, "webhook_poll_s": 0.1}
    )


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:9000/hook",
        "http://10.1.2.3/hook",
        "http://169.254.169.254/latest/meta-data/",
        "http://localhost:9000/hook",
        "http://[::1]/hook",
        "http://192.168.0.10/hook",
    ],
)
async def test_private_targets_are_refused(
    client: httpx.AsyncClient, tenant: Tenant, url: str
) -> None:
    endpoint = await client.post(
        f"/v1/organizations/{tenant.org_id}/webhooks", json={"url": url}, headers=tenant.headers
    )
    assert endpoint.status_code == 422, endpoint.text
    assert "GENWAY_WEBHOOK_ALLOW_PRIVATE" in endpoint.text
    job = await client.post(
        f"/v1/organizations/{tenant.org_id}/jobs",
        json={"kind": "diagnostic.sleep", "input": {"seconds": 0}, "webhook": url},
        headers=tenant.headers,
    )
    assert job.status_code == 422, job.text


async def test_only_http_urls_are_targets(client: httpx.AsyncClient, tenant: Tenant) -> None:
    for url in ("ftp://example.com/x", "file:///etc/passwd", "https://user:pw@example.com/"):
        response = await client.post(
            f"/v1/organizations/{tenant.org_id}/webhooks",
            json={"url": url},
            headers=tenant.headers,
        )
        assert response.status_code == 422, (url, response.text)


async def test_http_needs_the_setting(settings: Settings) -> None:
    strict = settings.model_copy(update={"webhook_allow_http": False})
    with pytest.raises(TargetRefused, match="https"):
        await check_target("http://93.184.216.34/hook", strict.webhook_policy)
    await check_target("https://93.184.216.34/hook", strict.webhook_policy)


async def test_addresses_are_checked_again_when_sending(
    client: httpx.AsyncClient, tenant: Tenant, db: Database, settings: Settings
) -> None:
    # An endpoint whose name pointed elsewhere when it was checked (DNS rebinding), stored
    # here directly: the delivery is refused at send time, and nothing is sent.
    async with db.transaction() as session:
        endpoint = WebhookEndpoint(
            org_id=tenant.org_id,
            url="http://localhost:9/rebound",
            event_types=["*"],
            secret=settings.secret_box.encrypt(new_secret()),
        )
        session.add(endpoint)
    hooks = f"/v1/organizations/{tenant.org_id}/webhooks/{endpoint.id}"
    ping = await client.post(f"{hooks}/test", headers=tenant.headers)
    assert ping.status_code == 202
    url = f"{hooks}/deliveries/{ping.json()['id']}"
    delivery = await settled_delivery(client, url, tenant.headers)
    assert delivery["status"] == "failed"
    assert "loopback" in delivery["last_error"]
    assert delivery["attempt_log"][0]["status_code"] is None

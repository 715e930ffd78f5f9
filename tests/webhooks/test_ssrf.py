"""Webhook targets on private addresses are refused unless the deployment allows them."""

from __future__ import annotations

import httpx
import pytest

from genway.config import Settings
from tests.support import Tenant


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"webhook_allow_http": True})


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


async def test_http_needs_the_setting(
    client: httpx.AsyncClient, tenant: Tenant, settings: Settings, app: object
) -> None:
    strict = settings.model_copy(update={"webhook_allow_http": False})
    from genway.webhooks.targets import TargetRefused, check_target

    with pytest.raises(TargetRefused, match="https"):
        await check_target("http://93.184.216.34/hook", strict.webhook_policy)

"""`genway webhooks listen --forward-to URL` forwards the organization's events, signed."""

from __future__ import annotations

import asyncio

import httpx
import pytest
from standardwebhooks import Webhook
from typer.testing import CliRunner

from genway.cli import app as cli
from genway.config import Settings
from genway.webhooks.signing import new_secret
from tests.support import Tenant
from tests.webhooks.receiver import Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"embedded_worker": True})


async def test_listen_forwards_signed_events_to_a_local_url(
    monkeypatch: pytest.MonkeyPatch,
    server: str,
    client: httpx.AsyncClient,
    tenant: Tenant,
    receiver: tuple[Receiver, str],
) -> None:
    hooks, base = receiver
    monkeypatch.setenv("GENWAY_URL", server)
    monkeypatch.setenv("GENWAY_API_KEY", tenant.key)
    secret = new_secret()
    args = ["webhooks", "listen", "--forward-to", f"{base}/cli", "--secret", secret]
    args += ["--events", "job.succeeded", "--max-events", "1"]
    listening = asyncio.create_task(asyncio.to_thread(CliRunner().invoke, cli, args))
    job = None
    async with asyncio.timeout(30):
        while not hooks.at("cli"):
            if job is None or job["status"] == "succeeded":  # until the stream is connected
                response = await client.post(
                    f"/v1/organizations/{tenant.org_id}/jobs",
                    json={"kind": "diagnostic.sleep", "input": {"seconds": 0}},
                    headers=tenant.headers,
                )
                job = response.json()
            await asyncio.sleep(0.3)
            job = (
                await client.get(
                    f"/v1/organizations/{tenant.org_id}/jobs/{job['id']}", headers=tenant.headers
                )
            ).json()
        result = await listening
    assert result.exit_code == 0, result.output
    assert secret in result.output and "job.succeeded [200]" in result.output
    delivered = hooks.at("cli")[0]
    payload = Webhook(secret).verify(delivered.body, delivered.headers)
    assert payload["type"] == "job.succeeded"
    assert payload["data"]["status"] == "succeeded" and payload["data"]["org_id"] == tenant.org_id

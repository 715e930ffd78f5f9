"""An API key expiring within 7 days: its creator is told once, in-app and by email; keys
further out, revoked ones and keys without expiry are left alone."""

from __future__ import annotations

import httpx
import pytest

from genway.config import Settings
from genway.db import Database
from genway.notifications.expiry import KeyExpiryScanner
from tests.notifications.support import (
    Mailbox,
    notifications,
    outbox_drained,
    wait_until,
    with_smtp,
)
from tests.support import Tenant


@pytest.fixture
def settings(settings: Settings, smtp: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, smtp[1])


async def create_key(client: httpx.AsyncClient, tenant: Tenant, name: str, days: int) -> int:
    response = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        json={"name": name, "expires_in_days": days},
        headers=tenant.headers,
    )
    assert response.status_code == 201, response.text
    key_id: int = response.json()["id"]
    return key_id


async def test_key_expiring_within_a_week_warns_its_creator_once(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, mailbox: Mailbox
):
    soon = await create_key(client, tenant, "<b>ci</b>", 3)
    await create_key(client, tenant, "later", 30)
    revoked = await create_key(client, tenant, "revoked", 2)
    url = f"/v1/organizations/{tenant.org_id}/api-keys/{revoked}"
    assert (await client.delete(url, headers=tenant.headers)).is_success

    scanner = KeyExpiryScanner(db)
    await scanner.run_once()  # the runtime's own scan may have run first: either warns once
    assert await scanner.run_once() == 0

    [warning] = (await notifications(client, tenant.headers))["items"]
    assert warning["kind"] == "key_expiring"
    assert warning["title"] == "API key '<b>ci</b>' expires in 3 days"
    assert warning["data"]["key_id"] == soon and warning["data"]["name"] == "<b>ci</b>"

    await wait_until(lambda: outbox_drained(db))
    [mail] = mailbox.received
    assert mail.recipients == [tenant.owner_email]
    assert mail.subject == "[Genway] API key '<b>ci</b>' expires in 3 days"
    assert "Key:      <b>ci</b>" in mail.part("text/plain")
    html = mail.part("text/html")
    assert "&lt;b&gt;ci&lt;/b&gt;" in html and "<b>ci</b>" not in html  # escaped in HTML

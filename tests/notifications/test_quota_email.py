"""Quota at 80 % and 100 %: one email to each owner and admin, read from a real SMTP server
(aiosmtpd on 127.0.0.1), the in-app notifications and the organization events; without SMTP,
in-app only and no error."""

from __future__ import annotations

import httpx
import pytest
from structlog.testing import capture_logs

import tests.ratelimit.probe_executors  # noqa: F401  (registers the image probe kind)
from genway.auth.permissions import Role
from genway.config import Settings
from genway.db import Database
from genway.notifications.runtime import notifications_runtime
from genway.observability.logging import configure_logging
from genway.orgs.models import Tier
from tests.notifications.support import (
    Mailbox,
    notifications,
    org_events,
    outbox_counts,
    outbox_drained,
    wait_until,
    with_smtp,
)
from tests.ratelimit.probe_executors import IMAGE_PROBE
from tests.support import Tenant, bearer, make_tenant

LIMITS = {"free": {"images_per_day": 5, "jobs_per_minute": 100}}


@pytest.fixture
def settings(settings: Settings, smtp: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, smtp[1], tier_limits=LIMITS)


async def submit_images(client: httpx.AsyncClient, org: Tenant, count: int) -> list[int]:
    url = f"/v1/organizations/{org.org_id}/jobs"
    codes = []
    for _ in range(count):
        response = await client.post(url, json={"kind": IMAGE_PROBE}, headers=org.headers)
        codes.append(response.status_code)
    return codes


async def test_quota_at_80_and_100_percent_mails_the_admins_once_each(
    client: httpx.AsyncClient, db: Database, mailbox: Mailbox
):
    org = await make_tenant(db, tier=Tier.FREE)
    admin_id, admin_key = await org.add_member(Role.ADMIN, email="admin@quota.test")
    member_id, member_key = await org.add_member(Role.MEMBER, email="member@quota.test")
    admins = (org.owner_email, "admin@quota.test")

    assert await submit_images(client, org, 3) == [201] * 3  # 60 %: nothing yet
    assert await outbox_counts(db) == {}
    assert await submit_images(client, org, 1) == [201]  # 4 of 5: 80 %

    await wait_until(lambda: _has_mail(mailbox, len(admins)))
    await wait_until(lambda: outbox_drained(db))
    for address in admins:
        [mail] = mailbox.to(address)
        assert mail.recipients == [address]
        assert mail.subject == "[Genway] Daily images quota at 80 %"
        assert mail.message["From"] == "Genway <alerts@genway.test>"
        assert mail.message.get_content_type() == "multipart/alternative"
        text, html = mail.part("text/plain"), mail.part("text/html")
        assert "used 4 of its 5 daily images" in text and "Used:    4 of 5 (80 %)" in text
        assert "<html" in html and "4 of 5 (80 %)" in html
    assert mailbox.to("member@quota.test") == []

    assert await submit_images(client, org, 1) == [201]  # 5 of 5: 100 %
    assert await submit_images(client, org, 2) == [429, 429]  # refused: no further alert
    await wait_until(lambda: _has_mail(mailbox, 2 * len(admins)))
    await wait_until(lambda: outbox_drained(db))
    assert await outbox_counts(db) == {"sent": 2 * len(admins)}
    for address in admins:
        subjects = [mail.subject for mail in mailbox.to(address)]
        assert subjects == [
            "[Genway] Daily images quota at 80 %",
            "[Genway] Daily images quota used up",
        ]
        exceeded = mailbox.to(address)[1]
        assert "used all 5 images" in exceeded.part("text/plain")
    assert len(mailbox.received) == 2 * len(admins)

    for key in (org.key, admin_key):
        page = await notifications(client, bearer(key))
        assert [n["kind"] for n in page["items"]] == ["quota_exceeded", "quota_warning"]
        assert page["items"][0]["data"] == {
            "quota": "images",
            "limit": 5,
            "used": 5,
            "percent": 100,
            "resets_at": page["items"][0]["data"]["resets_at"],
        }
    assert (await notifications(client, bearer(member_key)))["items"] == []

    events = await org_events(db, org.org_id)
    org_wide = [(e.type, e.data["percent"]) for e in events if e.user_id is None]
    assert org_wide == [("quota.warning", 80), ("quota.exceeded", 100)]
    personal = [(e.type, e.user_id) for e in events if e.user_id is not None]
    assert sorted(personal) == sorted(
        [("notification.new", user) for user in (org.owner_id, admin_id) for _ in range(2)]
    )
    assert member_id not in {e.user_id for e in events}


async def _has_mail(mailbox: Mailbox, count: int) -> bool:
    return len(mailbox.received) >= count


async def test_a_batch_that_jumps_past_80_percent_says_only_used_up(
    client: httpx.AsyncClient, db: Database, mailbox: Mailbox
):
    org = await make_tenant(db, tier=Tier.FREE)
    url = f"/v1/organizations/{org.org_id}/jobs"
    body = {"kind": IMAGE_PROBE, "input": {"batch_size": 5}}
    assert (await client.post(url, json=body, headers=org.headers)).status_code == 201
    await wait_until(lambda: _has_mail(mailbox, 1))
    await wait_until(lambda: outbox_drained(db))
    assert [mail.subject for mail in mailbox.received] == ["[Genway] Daily images quota used up"]
    page = await notifications(client, org.headers)
    assert [n["kind"] for n in page["items"]] == ["quota_exceeded"]


async def test_admins_who_turned_quota_email_off_get_it_in_app_only(
    client: httpx.AsyncClient, db: Database, mailbox: Mailbox
):
    org = await make_tenant(db, tier=Tier.FREE)
    _admin_id, admin_key = await org.add_member(Role.ADMIN, email="quiet-admin@quota.test")
    off = await client.patch(
        "/v1/users/me/notification-preferences",
        json={"email_quota": False},
        headers=bearer(admin_key),
    )
    assert off.status_code == 200 and off.json()["email_quota"] is False
    assert await submit_images(client, org, 4) == [201] * 4
    await wait_until(lambda: _has_mail(mailbox, 1))
    await wait_until(lambda: outbox_drained(db))
    assert [mail.recipients for mail in mailbox.received] == [[org.owner_email]]
    page = await notifications(client, bearer(admin_key))
    assert [n["kind"] for n in page["items"]] == ["quota_warning"]


class TestWithoutSMTP:
    @pytest.fixture
    def settings(self, settings: Settings) -> Settings:  # type: ignore[override]
        return settings.model_copy(update={"smtp_url": None, "tier_limits": LIMITS})

    async def test_in_app_only_and_no_error(
        self, client: httpx.AsyncClient, db: Database, mailbox: Mailbox
    ):
        org = await make_tenant(db, tier=Tier.FREE)
        assert await submit_images(client, org, 5) == [201] * 5
        page = await notifications(client, org.headers)
        assert [n["kind"] for n in page["items"]] == ["quota_exceeded", "quota_warning"]
        assert page["unread_count"] == 2
        types = [e.type for e in await org_events(db, org.org_id) if e.user_id is None]
        assert types == ["quota.warning", "quota.exceeded"]
        assert await outbox_counts(db) == {}  # nothing queued that could never be sent
        assert mailbox.received == []

    async def test_the_log_says_so_once_at_start(self, settings: Settings):
        configure_logging("INFO")  # the app under test logs warnings only
        database = Database(settings.resolved_database_url)
        try:
            with capture_logs() as logs:
                async with notifications_runtime(settings, database) as running:
                    assert running.sender is None
                    assert len(database.before_commit) == 1
            assert [e["event"] for e in logs if "smtp" in e["event"]] == ["smtp_not_configured"]
            assert database.before_commit == []  # removed at exit
        finally:
            await database.dispose()

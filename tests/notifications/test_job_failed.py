"""A failed job notifies its submitter only when they opted in (in-app and/or email); the
embedded worker runs the jobs, so the failure is recorded by the worker's transaction."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from genway.auth.permissions import Role
from genway.config import Settings
from genway.db import Database
from tests.notifications.support import (
    Mailbox,
    notifications,
    outbox_counts,
    outbox_drained,
    wait_until,
    with_smtp,
)
from tests.support import Tenant, bearer

PREFERENCES = "/v1/users/me/notification-preferences"


@pytest.fixture
def settings(settings: Settings, smtp: tuple[Mailbox, int]) -> Settings:
    return with_smtp(settings, smtp[1], embedded_worker=True)


async def run_job(
    client: httpx.AsyncClient, org_id: int, headers: dict[str, str], *, fail: bool
) -> dict[str, Any]:
    url = f"/v1/organizations/{org_id}/jobs"
    body = {"kind": "diagnostic.sleep", "input": {"fail": fail}, "max_attempts": 1}
    submitted = await client.post(url, json=body, headers=headers)
    assert submitted.status_code == 201, submitted.text
    job: dict[str, Any] = submitted.json()

    async def ended() -> bool:
        nonlocal job
        job = (await client.get(f"{url}/{job['id']}", headers=headers)).json()
        return job["status"] in ("succeeded", "failed")

    await wait_until(ended)
    return job


async def test_failed_job_notifies_only_a_user_who_opted_in(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, mailbox: Mailbox
):
    _member_id, member_key = await tenant.add_member(Role.MEMBER, email="quiet@jobs.test")
    opt_in = {"in_app_job_failed": True, "email_job_failed": True}
    assert (await client.patch(PREFERENCES, json=opt_in, headers=tenant.headers)).is_success

    ok = await run_job(client, tenant.org_id, tenant.headers, fail=False)
    failed = await run_job(client, tenant.org_id, tenant.headers, fail=True)
    quiet = await run_job(client, tenant.org_id, bearer(member_key), fail=True)
    assert (ok["status"], failed["status"], quiet["status"]) == ("succeeded", "failed", "failed")

    [notification] = (await notifications(client, tenant.headers))["items"]
    assert notification["kind"] == "job_failed"
    assert notification["title"] == f"Job {failed['id']} failed"
    assert notification["data"]["job_id"] == failed["id"]
    assert notification["data"]["error"]["code"] == "diagnostic_failure"
    assert "diagnostic.sleep was asked to fail" in notification["body"]
    assert (await notifications(client, bearer(member_key)))["items"] == []

    await wait_until(lambda: outbox_drained(db))
    assert await outbox_counts(db) == {"sent": 1}
    [mail] = mailbox.received
    assert mail.recipients == [tenant.owner_email]
    assert mail.subject == f"[Genway] Job {failed['id']} failed"
    assert "diagnostic_failure" in mail.part("text/plain")
    assert "diagnostic_failure" in mail.part("text/html")


async def test_email_only_or_in_app_only(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, mailbox: Mailbox
):
    email_id, email_key = await tenant.add_member(Role.MEMBER, email="mail-only@jobs.test")
    _app_id, app_key = await tenant.add_member(Role.MEMBER, email="app-only@jobs.test")
    mail_only = {"email_job_failed": True}
    app_only = {"in_app_job_failed": True}
    assert (await client.patch(PREFERENCES, json=mail_only, headers=bearer(email_key))).is_success
    assert (await client.patch(PREFERENCES, json=app_only, headers=bearer(app_key))).is_success

    await run_job(client, tenant.org_id, bearer(email_key), fail=True)
    await run_job(client, tenant.org_id, bearer(app_key), fail=True)

    assert (await notifications(client, bearer(email_key)))["items"] == []
    [shown] = (await notifications(client, bearer(app_key)))["items"]
    assert shown["kind"] == "job_failed"
    await wait_until(lambda: outbox_drained(db))
    assert [mail.recipients for mail in mailbox.received] == [["mail-only@jobs.test"]]
    assert email_id != tenant.owner_id

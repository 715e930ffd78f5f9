"""Notification preferences: defaults, replacing (PUT) and changing some (PATCH), per user."""

from __future__ import annotations

import httpx

from genway.auth.permissions import Role
from tests.support import Tenant, bearer

URL = "/v1/users/me/notification-preferences"
DEFAULTS = {
    "email_quota": True,
    "email_key_expiring": True,
    "email_webhook_disabled": True,
    "email_job_failed": False,
    "in_app_job_failed": False,
}


async def test_defaults_put_and_patch(client: httpx.AsyncClient, tenant: Tenant):
    assert (await client.get(URL, headers=tenant.headers)).json() == DEFAULTS

    patched = await client.patch(URL, json={"email_job_failed": True}, headers=tenant.headers)
    assert patched.status_code == 200
    assert patched.json() == {**DEFAULTS, "email_job_failed": True}
    patched = await client.patch(URL, json={"email_quota": False}, headers=tenant.headers)
    assert patched.json() == {**DEFAULTS, "email_job_failed": True, "email_quota": False}
    assert (await client.patch(URL, json={}, headers=tenant.headers)).json() == patched.json()

    replaced = await client.put(URL, json={"in_app_job_failed": True}, headers=tenant.headers)
    assert replaced.status_code == 200
    assert replaced.json() == {**DEFAULTS, "in_app_job_failed": True}  # omitted: defaults
    assert (await client.get(URL, headers=tenant.headers)).json() == replaced.json()


async def test_preferences_are_per_user(client: httpx.AsyncClient, tenant: Tenant):
    _member_id, member_key = await tenant.add_member(Role.MEMBER)
    everything_off = dict.fromkeys(DEFAULTS, False)
    assert (await client.put(URL, json=everything_off, headers=tenant.headers)).status_code == 200
    assert (await client.get(URL, headers=bearer(member_key))).json() == DEFAULTS
    assert (await client.get(URL, headers=tenant.headers)).json() == everything_off


async def test_invalid_preferences_are_refused(client: httpx.AsyncClient, tenant: Tenant):
    for method, body in (
        ("PATCH", {"email_quota": None}),
        ("PATCH", {"email_sms": True}),
        ("PATCH", {"email_quota": "perhaps"}),
        ("PUT", {"in_app_quota": True}),
        ("PUT", {"email_job_failed": [True]}),
    ):
        response = await client.request(method, URL, json=body, headers=tenant.headers)
        assert response.status_code == 422, (method, body)
    assert (await client.get(URL, headers=tenant.headers)).json() == DEFAULTS

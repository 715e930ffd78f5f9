"""API keys: accepted headers, refusals, storage, and role limits, all through HTTP."""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta

import httpx
from sqlalchemy import select, update

from genway.auth.permissions import Role
from genway.db import Database, utcnow
from genway.keys.models import APIKey
from tests.support import Tenant, bearer


async def test_key_accepted_as_bearer_and_x_api_key(client: httpx.AsyncClient, tenant: Tenant):
    by_bearer = await client.get("/v1/users/me", headers=bearer(tenant.key))
    by_header = await client.get("/v1/users/me", headers={"X-API-Key": tenant.key})
    assert by_bearer.status_code == by_header.status_code == 200
    assert by_bearer.json()["email"] == tenant.owner_email


async def test_missing_malformed_and_unknown_credentials_get_401(
    client: httpx.AsyncClient, tenant: Tenant
):
    cases = [
        {},
        {"Authorization": "Bearer"},
        {"Authorization": "Basic dXNlcjpwYXNz"},
        {"Authorization": "Bearer gw_" + "A" * 43},
        {"X-API-Key": "gw_not-a-real-key"},
        {"Authorization": "Bearer not.a.jwt"},
    ]
    for headers in cases:
        response = await client.get("/v1/users/me", headers=headers)
        assert response.status_code == 401, headers
        body = response.json()
        assert body["status_code"] == 401 and isinstance(body["detail"], str)
        assert response.headers["www-authenticate"] == "Bearer"


async def test_created_key_is_shown_once_and_stored_as_sha256(
    client: httpx.AsyncClient, tenant: Tenant, db: Database
):
    created = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        json={"name": "ci", "role": "member"},
        headers=tenant.headers,
    )
    assert created.status_code == 201
    secret = created.json()["api_key"]
    assert secret.startswith("gw_") and len(secret) >= 3 + 43
    assert created.json()["prefix"] == secret[:10]
    listed = await client.get(f"/v1/organizations/{tenant.org_id}/api-keys", headers=tenant.headers)
    assert listed.status_code == 200
    assert all("api_key" not in item for item in listed.json()["items"])
    assert secret not in listed.text
    async with db.sessions() as session:
        stored = await session.scalar(select(APIKey).where(APIKey.id == created.json()["id"]))
    assert stored is not None
    assert stored.key_hash == hashlib.sha256(secret.encode()).hexdigest()
    assert secret not in {stored.key_hash, stored.prefix, stored.name}
    assert (await client.get("/v1/users/me", headers=bearer(secret))).status_code == 200


async def test_revoked_key_is_refused_on_the_very_next_request(
    client: httpx.AsyncClient, tenant: Tenant
):
    created = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys", json={"name": "temp"}, headers=tenant.headers
    )
    secret, key_id = created.json()["api_key"], created.json()["id"]
    assert (await client.get("/v1/users/me", headers=bearer(secret))).status_code == 200
    revoked = await client.delete(
        f"/v1/organizations/{tenant.org_id}/api-keys/{key_id}", headers=tenant.headers
    )
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    after = await client.get("/v1/users/me", headers=bearer(secret))
    assert after.status_code == 401
    assert "revoked" in after.json()["detail"]


async def test_expired_key_is_refused(client: httpx.AsyncClient, tenant: Tenant, db: Database):
    created = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        json={"name": "short", "expires_in_days": 1},
        headers=tenant.headers,
    )
    assert created.json()["expires_at"] is not None
    secret = created.json()["api_key"]
    assert (await client.get("/v1/users/me", headers=bearer(secret))).status_code == 200
    async with db.sessions() as session:
        await session.execute(
            update(APIKey)
            .where(APIKey.id == created.json()["id"])
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )
        await session.commit()
    after = await client.get("/v1/users/me", headers=bearer(secret))
    assert after.status_code == 401 and "expired" in after.json()["detail"]


async def test_key_lifetime_is_the_requested_number_of_days(
    client: httpx.AsyncClient, tenant: Tenant
):
    for days in (1, 30):
        before = utcnow()
        created = await client.post(
            f"/v1/organizations/{tenant.org_id}/api-keys",
            json={"name": f"{days}d", "expires_in_days": days},
            headers=tenant.headers,
        )
        after = utcnow()
        assert created.status_code == 201, created.text
        expires_at = datetime.fromisoformat(created.json()["expires_at"])
        slack = timedelta(seconds=1)  # stored timestamps may lose sub-second precision
        lifetime = timedelta(days=days)
        assert before + lifetime - slack <= expires_at <= after + lifetime + slack, expires_at
        secret = created.json()["api_key"]
        assert (await client.get("/v1/users/me", headers=bearer(secret))).status_code == 200
    forever = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        json={"name": "forever"},
        headers=tenant.headers,
    )
    assert forever.status_code == 201 and forever.json()["expires_at"] is None


async def test_last_used_is_recorded(client: httpx.AsyncClient, tenant: Tenant):
    await client.get("/v1/users/me", headers=tenant.headers)
    keys = await client.get(f"/v1/organizations/{tenant.org_id}/api-keys", headers=tenant.headers)
    assert keys.json()["items"][0]["last_used_at"] is not None


async def test_key_role_cannot_exceed_makers_role(client: httpx.AsyncClient, tenant: Tenant):
    _admin_id, admin_key = await tenant.add_member(Role.ADMIN)
    response = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        json={"name": "escalate", "role": "owner"},
        headers=bearer(admin_key),
    )
    assert response.status_code == 403
    ok = await client.post(
        f"/v1/organizations/{tenant.org_id}/api-keys",
        json={"name": "fine", "role": "viewer"},
        headers=bearer(admin_key),
    )
    assert ok.status_code == 201 and ok.json()["role"] == "viewer"


async def test_member_cannot_manage_keys_and_viewer_cannot_write(
    client: httpx.AsyncClient, tenant: Tenant
):
    _member_id, member_key = await tenant.add_member(Role.MEMBER)
    _viewer_id, viewer_key = await tenant.add_member(Role.VIEWER)
    base = f"/v1/organizations/{tenant.org_id}"
    for key in (member_key, viewer_key):
        assert (
            await client.post(f"{base}/api-keys", json={"name": "x"}, headers=bearer(key))
        ).status_code == 403
        assert (await client.get(f"{base}/api-keys", headers=bearer(key))).status_code == 403
        assert (
            await client.post("/api/v1/auth/keys", json={"name": "x"}, headers=bearer(key))
        ).status_code == 403
    viewer_write = await client.post(
        f"{base}/members", json={"email": tenant.owner_email}, headers=bearer(viewer_key)
    )
    assert viewer_write.status_code == 403
    assert "viewer" in viewer_write.json()["detail"]
    assert (await client.get(f"{base}/users", headers=bearer(viewer_key))).status_code == 200


async def test_removed_members_keys_stop_working(client: httpx.AsyncClient, tenant: Tenant):
    member_id, member_key = await tenant.add_member(Role.MEMBER)
    assert (await client.get("/v1/users/me", headers=bearer(member_key))).status_code == 200
    removed = await client.delete(
        f"/v1/organizations/{tenant.org_id}/members/{member_id}", headers=tenant.headers
    )
    assert removed.status_code == 204
    assert (await client.get("/v1/users/me", headers=bearer(member_key))).status_code == 401


async def test_own_keys_via_legacy_auth_routes(client: httpx.AsyncClient, tenant: Tenant):
    created = await client.post("/api/v1/auth/keys", json={"name": "mine"}, headers=tenant.headers)
    assert created.status_code == 201 and created.json()["org_id"] == tenant.org_id
    listed = await client.get("/api/v1/auth/keys", headers=tenant.headers)
    assert {k["name"] for k in listed.json()["items"]} >= {"mine", "owner"}
    revoked = await client.delete(
        f"/api/v1/auth/keys/{created.json()['id']}", headers=tenant.headers
    )
    assert revoked.status_code == 200
    assert (
        await client.get("/v1/users/me", headers=bearer(created.json()["api_key"]))
    ).status_code == 401


async def test_an_admin_revokes_keys_up_to_its_own_role_only(
    client: httpx.AsyncClient, tenant: Tenant
):
    _admin_id, admin_key = await tenant.add_member(Role.ADMIN)
    _member_id, member_key = await tenant.add_member(Role.MEMBER)
    url = f"/v1/organizations/{tenant.org_id}/api-keys"
    keys = (await client.get(url, headers=tenant.headers)).json()["items"]
    by_role = {key["role"]: key["id"] for key in keys}
    for path in (f"{url}/{by_role['owner']}", f"/api/v1/auth/keys/{by_role['owner']}"):
        refused = await client.delete(path, headers=bearer(admin_key))
        assert refused.status_code == 403, refused.text
    assert (await client.get("/v1/users/me", headers=tenant.headers)).status_code == 200
    revoked = await client.delete(f"{url}/{by_role['member']}", headers=bearer(admin_key))
    assert revoked.status_code == 200 and revoked.json()["revoked_at"]
    assert (await client.get("/v1/users/me", headers=bearer(member_key))).status_code == 401
    # Anyone may revoke their own key.
    own = await client.delete(f"{url}/{by_role['admin']}", headers=bearer(admin_key))
    assert own.status_code == 200

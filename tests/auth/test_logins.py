"""Logins: register, login, refresh rotation, logout, JWT refusals, brute-force limits."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import httpx
import jwt

from genway.config import Settings
from tests.support import PASSWORD, Tenant, bearer, login


async def _register(client: httpx.AsyncClient, email: str, password: str = PASSWORD):
    return await client.post(
        "/api/v1/auth/register", json={"email": email, "password": password, "full_name": "A B"}
    )


async def test_register_login_me_and_refresh_rotation(client: httpx.AsyncClient):
    registered = await _register(client, "New.User@Example.com")
    assert registered.status_code == 201
    assert registered.json()["email"] == "new.user@example.com"
    assert "password" not in registered.text
    tokens = await login(client, "new.user@example.com")
    assert tokens["token_type"] == "bearer" and tokens["expires_in"] == 900
    me = await client.get("/api/v1/auth/me", headers=bearer(tokens["access_token"]))
    assert me.status_code == 200
    assert me.json()["email"] == "new.user@example.com" and me.json()["organizations"] == []

    rotated = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert rotated.status_code == 200
    assert rotated.json()["refresh_token"] != tokens["refresh_token"]
    reused = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert reused.status_code == 401
    # Reuse of a spent refresh token is a theft signal: the whole session is revoked.
    newest = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": rotated.json()["refresh_token"]}
    )
    assert newest.status_code == 401
    after = await client.get("/api/v1/auth/me", headers=bearer(rotated.json()["access_token"]))
    assert after.status_code == 401


async def test_logout_revokes_access_and_refresh_tokens(client: httpx.AsyncClient):
    await _register(client, "bye@example.com")
    tokens = await login(client, "bye@example.com")
    headers = bearer(tokens["access_token"])
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 200
    assert (await client.post("/api/v1/auth/logout", headers=headers)).status_code == 204
    assert (await client.get("/v1/users/me", headers=headers)).status_code == 401
    refreshed = await client.post(
        "/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]}
    )
    assert refreshed.status_code == 401


async def test_expired_forged_and_wrong_type_jwts_are_refused(
    client: httpx.AsyncClient, settings: Settings
):
    await _register(client, "jwt@example.com")
    tokens = await login(client, "jwt@example.com")
    claims = jwt.decode(tokens["access_token"], options={"verify_signature": False})
    secret = settings.resolved_secret_key
    expired = jwt.encode(
        {**claims, "exp": datetime.now(UTC) - timedelta(seconds=5)}, secret, algorithm="HS256"
    )
    forged = jwt.encode(claims, "another-secret-another-secret-1234", algorithm="HS256")
    wrong_type = jwt.encode({**claims, "type": "refresh"}, secret, algorithm="HS256")
    unsigned = jwt.encode(claims, None, algorithm="none")
    for token in (expired, forged, wrong_type, unsigned, tokens["access_token"][:-4] + "abcd"):
        response = await client.get("/v1/users/me", headers=bearer(token))
        assert response.status_code == 401, token
    response = await client.get("/v1/users/me", headers=bearer(expired))
    assert "expired" in response.json()["detail"]


async def test_password_rules_and_duplicates(client: httpx.AsyncClient):
    short = await _register(client, "short@example.com", "abc")
    assert short.status_code == 422 and "at least" in short.json()["detail"]
    bad_email = await _register(client, "not-an-email")
    assert bad_email.status_code == 422 and isinstance(bad_email.json()["detail"], list)
    assert (await _register(client, "dup@example.com")).status_code == 201
    duplicate = await _register(client, "DUP@example.com")
    assert duplicate.status_code == 409


async def test_wrong_password_and_unknown_user_look_the_same(client: httpx.AsyncClient):
    await _register(client, "real@example.com")
    wrong = await client.post(
        "/api/v1/auth/login", json={"email": "real@example.com", "password": "wrong-password"}
    )
    unknown = await client.post(
        "/api/v1/auth/login", json={"email": "ghost@example.com", "password": "wrong-password"}
    )
    assert wrong.status_code == unknown.status_code == 401
    assert wrong.json() == unknown.json()


async def test_login_brute_force_gets_429_after_ten_failures(client: httpx.AsyncClient):
    await _register(client, "target@example.com")
    for _ in range(10):
        response = await client.post(
            "/api/v1/auth/login", json={"email": "target@example.com", "password": "guess-guess"}
        )
        assert response.status_code == 401
    blocked = await client.post(
        "/api/v1/auth/login", json={"email": "target@example.com", "password": PASSWORD}
    )
    assert blocked.status_code == 429
    assert int(blocked.headers["retry-after"]) >= 1
    assert blocked.json()["status_code"] == 429
    # Another account from the same address is not locked out by this one's failures.
    await _register(client, "bystander@example.com")
    assert (await login(client, "bystander@example.com"))["access_token"]


async def test_logged_in_user_must_be_member_of_the_org_in_the_path(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    tokens = await login(client, tenant.owner_email)
    headers = bearer(tokens["access_token"])
    own = await client.get(f"/v1/organizations/{tenant.org_id}/users", headers=headers)
    assert own.status_code == 200 and own.json()["total"] == 1
    other = await client.get(f"/v1/organizations/{other_tenant.org_id}/users", headers=headers)
    assert other.status_code == 404
    assert other_tenant.owner_email not in other.text
    missing = await client.get("/v1/organizations/999999/users", headers=headers)
    assert (
        missing.status_code == 404 and missing.json()["detail"] == "Organization 999999 not found"
    )
    assert other.json()["detail"] == f"Organization {other_tenant.org_id} not found"

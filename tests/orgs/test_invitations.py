"""Joining an organization takes the invited user's consent: invitations, their answers, and
what they reveal (nothing about who has an account)."""

from __future__ import annotations

from typing import Any

import httpx

from genway.auth.permissions import Role
from tests.support import PASSWORD, Tenant, bearer, login


async def register(client: httpx.AsyncClient, email: str) -> dict[str, str]:
    created = await client.post(
        "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
    )
    assert created.status_code == 201, created.text
    return bearer((await login(client, email))["access_token"])


async def invite(
    client: httpx.AsyncClient, tenant: Tenant, email: str, role: str = "member"
) -> httpx.Response:
    return await client.post(
        f"/v1/organizations/{tenant.org_id}/invitations",
        json={"email": email, "role": role},
        headers=tenant.headers,
    )


def shape(body: dict[str, Any]) -> set[str]:
    return set(body)


async def test_invited_user_accepts_and_joins_with_the_role(
    client: httpx.AsyncClient, tenant: Tenant
):
    joiner = await register(client, "joiner@example.com")
    # Registered or not, the inviter gets the same answer: invitations reveal no accounts.
    known = await invite(client, tenant, "Joiner@Example.com", "admin")
    unknown = await invite(client, tenant, "stranger@example.com", "admin")
    assert known.status_code == unknown.status_code == 201
    assert shape(known.json()) == shape(unknown.json())
    assert known.json()["email"] == "joiner@example.com" and known.json()["status"] == "pending"

    # Not a member until accepted: no organization is chosen for them meanwhile.
    assert (await client.get("/v1/organizations", headers=joiner)).json()["total"] == 0
    legacy = await client.post("/v1/projects/", json={"title": "x"}, headers=joiner)
    assert legacy.status_code == 404

    notes = (await client.get("/v1/users/me/notifications", headers=joiner)).json()["items"]
    assert notes[0]["kind"] == "invitation" and notes[0]["data"]["org_id"] == tenant.org_id
    mine = (await client.get("/v1/users/me/invitations", headers=joiner)).json()
    assert mine["total"] == 1 and mine["items"][0]["id"] == known.json()["id"]

    accepted = await client.post(
        f"/v1/users/me/invitations/{known.json()['id']}/accept", headers=joiner
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    orgs = (await client.get("/v1/organizations", headers=joiner)).json()
    assert [o["id"] for o in orgs["items"]] == [tenant.org_id]
    members = (
        await client.get(f"/v1/organizations/{tenant.org_id}/members", headers=tenant.headers)
    ).json()["items"]
    assert {m["email"]: m["role"] for m in members}["joiner@example.com"] == "admin"
    twice = await client.post(
        f"/v1/users/me/invitations/{known.json()['id']}/accept", headers=joiner
    )
    assert twice.status_code == 404
    pending = (
        await client.get(f"/v1/organizations/{tenant.org_id}/invitations", headers=tenant.headers)
    ).json()
    assert [i["email"] for i in pending["items"]] == ["stranger@example.com"]


async def test_invitations_of_someone_else_cannot_be_answered(
    client: httpx.AsyncClient, tenant: Tenant
):
    invited = await invite(client, tenant, "target@example.com")
    intruder = await register(client, "intruder@example.com")
    url = f"/v1/users/me/invitations/{invited.json()['id']}"
    for action in ("accept", "decline"):
        refused = await client.post(f"{url}/{action}", headers=intruder)
        assert refused.status_code == 404
    assert (await client.get("/v1/users/me/invitations", headers=intruder)).json()["total"] == 0
    # Registering the address later finds the invitation waiting.
    target = await register(client, "target@example.com")
    declined = await client.post(f"{url}/decline", headers=target)
    assert declined.status_code == 200 and declined.json()["status"] == "declined"
    assert (await client.get("/v1/organizations", headers=target)).json()["total"] == 0


async def test_roles_revocation_members_and_api_keys(client: httpx.AsyncClient, tenant: Tenant):
    _admin_id, admin_key = await tenant.add_member(Role.ADMIN)
    too_high = await client.post(
        f"/v1/organizations/{tenant.org_id}/invitations",
        json={"email": "boss@example.com", "role": "owner"},
        headers=bearer(admin_key),
    )
    assert too_high.status_code == 403
    _viewer_id, viewer_key = await tenant.add_member(Role.VIEWER)
    viewer = await client.post(
        f"/v1/organizations/{tenant.org_id}/invitations",
        json={"email": "x@example.com"},
        headers=bearer(viewer_key),
    )
    assert viewer.status_code == 403
    member = await invite(client, tenant, tenant.owner_email)
    assert member.status_code == 409

    invited = await invite(client, tenant, "later@example.com")
    revoked = await client.delete(
        f"/v1/organizations/{tenant.org_id}/invitations/{invited.json()['id']}",
        headers=tenant.headers,
    )
    assert revoked.status_code == 204
    later = await register(client, "later@example.com")
    assert (await client.get("/v1/users/me/invitations", headers=later)).json()["total"] == 0
    gone = await client.post(
        f"/v1/users/me/invitations/{invited.json()['id']}/accept", headers=later
    )
    assert gone.status_code == 404

    again = await invite(client, tenant, "later@example.com")
    key_answer = await client.post(
        f"/v1/users/me/invitations/{again.json()['id']}/accept", headers=tenant.headers
    )
    assert key_answer.status_code == 403 and "user login" in key_answer.text


async def test_other_organizations_cannot_see_or_revoke_invitations(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    invited = await invite(client, tenant, "secret-hire@example.com")
    base = f"/v1/organizations/{tenant.org_id}/invitations"
    listed = await client.get(base, headers=other_tenant.headers)
    assert listed.status_code == 404 and "secret-hire" not in listed.text
    revoke = await client.delete(f"{base}/{invited.json()['id']}", headers=other_tenant.headers)
    assert revoke.status_code == 404
    own_org = await client.delete(
        f"/v1/organizations/{other_tenant.org_id}/invitations/{invited.json()['id']}",
        headers=other_tenant.headers,
    )
    assert own_org.status_code == 404
    still = (await client.get(base, headers=tenant.headers)).json()
    assert still["total"] == 1

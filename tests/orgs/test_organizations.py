"""Organizations, users and members through the canonical API."""

from __future__ import annotations

import asyncio

import httpx

from genway.auth.permissions import Role
from tests.support import PASSWORD, Tenant, bearer, login


async def test_users_me_and_organizations_page_shape(client: httpx.AsyncClient, tenant: Tenant):
    me = await client.get("/v1/users/me", headers=tenant.headers)
    assert me.status_code == 200
    user = me.json()
    assert user["id"] == tenant.owner_id
    assert user["github_user_id"] == "" and user["github_username"] == ""
    assert {"avatar_url", "full_name", "email"} <= user.keys()
    orgs = await client.get("/v1/organizations", headers=tenant.headers)
    assert orgs.status_code == 200
    page = orgs.json()
    assert set(page) == {"items", "total", "page", "size", "pages"}
    assert page["total"] == 1 and page["items"][0]["id"] == tenant.org_id
    assert page["items"][0]["settings"] == {
        "enable_pr_creation": True,
        "enable_rules_detection": True,
    }


async def test_users_pagination_with_skip_and_limit(client: httpx.AsyncClient, tenant: Tenant):
    for _ in range(4):
        await tenant.add_member(Role.MEMBER)
    base = f"/v1/organizations/{tenant.org_id}/users"
    first = (await client.get(base, params={"limit": 2}, headers=tenant.headers)).json()
    assert first["total"] == 5 and first["page"] == 1 and first["size"] == 2 and first["pages"] == 3
    third = (await client.get(base, params={"skip": 4, "limit": 2}, headers=tenant.headers)).json()
    assert third["page"] == 3 and len(third["items"]) == 1
    ids = [u["id"] for u in first["items"]] + [u["id"] for u in third["items"]]
    assert len(set(ids)) == 3
    too_big = await client.get(base, params={"limit": 101}, headers=tenant.headers)
    assert too_big.status_code == 422 and too_big.json()["detail"][0]["loc"] == ["query", "limit"]
    negative = await client.get(base, params={"skip": -1}, headers=tenant.headers)
    assert negative.status_code == 422


async def test_get_user_in_org_and_not_outside(
    client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    base = f"/v1/organizations/{tenant.org_id}/users"
    own = await client.get(f"{base}/{tenant.owner_id}", headers=tenant.headers)
    assert own.status_code == 200 and own.json()["email"] == tenant.owner_email
    outsider = await client.get(f"{base}/{other_tenant.owner_id}", headers=tenant.headers)
    assert outsider.status_code == 404
    bad_id = await client.get(f"{base}/not-a-number", headers=tenant.headers)
    assert bad_id.status_code == 422


async def test_members_add_change_remove_and_last_owner(client: httpx.AsyncClient, tenant: Tenant):
    base = f"/v1/organizations/{tenant.org_id}/members"
    registered = await client.post(
        "/api/v1/auth/register", json={"email": "joiner@example.com", "password": PASSWORD}
    )
    joiner_id = registered.json()["id"]
    invited = await client.post(
        base, json={"email": "joiner@example.com", "role": "viewer"}, headers=tenant.headers
    )
    assert invited.status_code == 202 and invited.json()["role"] == "viewer"
    tokens = await login(client, "joiner@example.com")
    accepted = await client.post(
        f"/v1/users/me/invitations/{invited.json()['id']}/accept",
        headers=bearer(tokens["access_token"]),
    )
    assert accepted.status_code == 200 and accepted.json()["status"] == "accepted"
    again = await client.post(base, json={"email": "joiner@example.com"}, headers=tenant.headers)
    assert again.status_code == 409

    users = await client.get(
        f"/v1/organizations/{tenant.org_id}/users", headers=bearer(tokens["access_token"])
    )
    assert users.status_code == 200 and users.json()["total"] == 2

    promoted = await client.patch(
        f"{base}/{joiner_id}", json={"role": "admin"}, headers=tenant.headers
    )
    assert promoted.status_code == 200 and promoted.json()["role"] == "admin"
    members = await client.get(base, headers=tenant.headers)
    assert {m["role"] for m in members.json()["items"]} == {"owner", "admin"}

    demote_owner = await client.patch(
        f"{base}/{tenant.owner_id}", json={"role": "member"}, headers=tenant.headers
    )
    assert demote_owner.status_code == 409
    remove_owner = await client.delete(f"{base}/{tenant.owner_id}", headers=tenant.headers)
    assert remove_owner.status_code == 409
    admin_headers = bearer(tokens["access_token"])
    admin_touch_owner = await client.delete(f"{base}/{tenant.owner_id}", headers=admin_headers)
    assert admin_touch_owner.status_code == 403

    # With a second owner, the first may step down.
    await client.patch(f"{base}/{joiner_id}", json={"role": "owner"}, headers=tenant.headers)
    stepped_down = await client.patch(
        f"{base}/{tenant.owner_id}", json={"role": "admin"}, headers=tenant.headers
    )
    assert stepped_down.status_code == 200
    removed = await client.delete(f"{base}/{tenant.owner_id}", headers=admin_headers)
    assert removed.status_code == 204
    gone = await client.get(f"{base}/{tenant.owner_id}", headers=admin_headers)
    assert gone.status_code == 404


async def test_only_owner_changes_org_and_only_platform_admins_its_tier(
    client: httpx.AsyncClient, tenant: Tenant
):
    _admin_id, admin_key = await tenant.add_member(Role.ADMIN)
    url = f"/v1/organizations/{tenant.org_id}"
    refused = await client.patch(url, json={"display_name": "X"}, headers=bearer(admin_key))
    assert refused.status_code == 403
    changed = await client.patch(
        url,
        json={"display_name": "Acme", "settings": {"enable_pr_creation": False}},
        headers=tenant.headers,
    )
    assert changed.status_code == 200
    body = changed.json()
    assert body["display_name"] == "Acme"
    assert body["settings"] == {"enable_pr_creation": False, "enable_rules_detection": True}
    # An owner cannot lift their own limits: tiers are the platform's to give.
    lifted = await client.patch(url, json={"tier": "free"}, headers=tenant.headers)
    assert lifted.status_code == 403 and "platform administrators" in lifted.text
    assert (await client.get(url, headers=tenant.headers)).json()["tier"] == body["tier"]
    same = await client.patch(url, json={"tier": body["tier"]}, headers=tenant.headers)
    assert same.status_code == 200
    bad_tier = await client.patch(url, json={"tier": "platinum"}, headers=tenant.headers)
    assert bad_tier.status_code == 422


async def test_an_api_key_cannot_create_organizations(client: httpx.AsyncClient, tenant: Tenant):
    _viewer, viewer_key = await tenant.add_member(Role.VIEWER)
    for name, key in (("side-one", viewer_key), ("side-two", tenant.key)):
        refused = await client.post("/v1/organizations", json={"name": name}, headers=bearer(key))
        assert refused.status_code == 403 and "user login" in refused.text
    orgs = await client.get("/v1/organizations", headers=tenant.headers)
    assert [o["id"] for o in orgs.json()["items"]] == [tenant.org_id]


async def test_logged_in_user_creates_an_organization(client: httpx.AsyncClient):
    await client.post(
        "/api/v1/auth/register", json={"email": "founder@example.com", "password": PASSWORD}
    )
    headers = bearer((await login(client, "founder@example.com"))["access_token"])
    created = await client.post(
        "/v1/organizations", json={"name": "founders", "display_name": "Founders"}, headers=headers
    )
    assert created.status_code == 201
    org_id = created.json()["id"]
    members = await client.get(f"/v1/organizations/{org_id}/members", headers=headers)
    assert members.json()["items"][0]["role"] == "owner"
    taken = await client.post("/v1/organizations", json={"name": "founders"}, headers=headers)
    assert taken.status_code == 409
    invalid = await client.post(
        "/v1/organizations", json={"name": "X", "slug": "Bad Slug!"}, headers=headers
    )
    assert invalid.status_code == 422
    # A display name is welcome: a free slug is derived from it, or given separately.
    slugs = []
    for body in (
        {"name": "Acme Inc."},
        {"name": "Acme Inc."},
        {"name": "Ünïcode Café"},
        {"name": "Acme Labs", "slug": "acme-labs-eu"},
    ):
        made = await client.post("/v1/organizations", json=body, headers=headers)
        assert made.status_code == 201, made.text
        assert made.json()["display_name"] == body["name"]
        slugs.append(made.json()["name"])
    assert slugs == ["acme-inc", "acme-inc-2", "unicode-cafe", "acme-labs-eu"]
    taken_slug = await client.post(
        "/v1/organizations", json={"name": "Other", "slug": "acme-inc"}, headers=headers
    )
    assert taken_slug.status_code == 409


async def test_codegen_official_client_lists_orgs_and_users(server: str, tenant: Tenant):
    import codegen_api_client as cg

    def use_client() -> tuple[object, object, object]:
        configuration = cg.Configuration(host=server)
        with cg.ApiClient(configuration) as api:
            auth = f"Bearer {tenant.key}"
            orgs = cg.OrganizationsApi(api).get_organizations_v1_organizations_get(
                authorization=auth
            )
            users = cg.UsersApi(api).get_users_v1_organizations_org_id_users_get(
                org_id=str(tenant.org_id), authorization=auth
            )
            user = cg.UsersApi(api).get_user_v1_organizations_org_id_users_user_id_get(
                org_id=str(tenant.org_id), user_id=str(tenant.owner_id), authorization=auth
            )
            return orgs, users, user

    orgs, users, user = await asyncio.to_thread(use_client)
    assert orgs.items[0].id == tenant.org_id  # type: ignore[attr-defined]
    assert orgs.items[0].settings.enable_pr_creation is True  # type: ignore[attr-defined]
    assert users.total == 1 and users.items[0].email == tenant.owner_email  # type: ignore[attr-defined]
    assert user.id == tenant.owner_id and user.github_username == ""  # type: ignore[attr-defined]


async def test_two_owners_demoting_each_other_at_once_leave_one_owner(
    client: httpx.AsyncClient, tenant: Tenant
):
    base = f"/v1/organizations/{tenant.org_id}/members"
    for _ in range(3):  # a race: tried a few times, each must end with exactly one owner
        second_id, second_key = await tenant.add_member(Role.OWNER)
        first_headers = tenant.headers
        second_headers = {"Authorization": f"Bearer {second_key}"}
        answers = await asyncio.gather(
            client.patch(f"{base}/{second_id}", json={"role": "admin"}, headers=first_headers),
            client.patch(
                f"{base}/{tenant.owner_id}", json={"role": "admin"}, headers=second_headers
            ),
        )
        # The loser is refused by the last-owner rule (409), or already as an admin (403) when
        # its request was authorized after the winner's committed.
        codes = sorted(a.status_code for a in answers)
        assert codes in ([200, 403], [200, 409]), [a.text for a in answers]
        members = (await client.get(base, headers=first_headers)).json()["items"]
        owners = [m for m in members if m["role"] == "owner"]
        assert len(owners) == 1
        if owners[0]["user_id"] != tenant.owner_id:  # make the tenant's owner the owner again
            headers = second_headers
            await client.patch(f"{base}/{tenant.owner_id}", json={"role": "owner"}, headers=headers)
        await client.delete(f"{base}/{second_id}", headers=first_headers)

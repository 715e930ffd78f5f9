"""In-app notifications through `/v1/users/me/notifications`: unread first then newest, pages,
the unread filter, marking read, and that nobody else's are ever visible or changeable."""

from __future__ import annotations

import base64

import httpx

from genway.auth.permissions import Role
from genway.db import Database
from genway.notifications.models import NotificationKind
from genway.notifications.service import notify_users
from genway.orgs.models import Membership
from tests.notifications.support import notifications, org_events
from tests.support import Tenant, bearer, login

URL = "/v1/users/me/notifications"


async def notify(db: Database, org_id: int, user_id: int, title: str) -> None:
    async with db.transaction() as session:
        await notify_users(
            session,
            org_id,
            [user_id],
            NotificationKind.WEBHOOK_DISABLED,
            title,
            f"body of {title}",
            {"title": title},
        )


async def test_listing_marking_one_and_all_read(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
):
    for n in range(1, 6):
        await notify(db, tenant.org_id, tenant.owner_id, f"n{n}")
    page = await notifications(client, tenant.headers)
    assert [n["title"] for n in page["items"]] == ["n5", "n4", "n3", "n2", "n1"]
    assert page["unread_count"] == 5 and page["next_cursor"] is None
    first = page["items"][-1]
    assert first["kind"] == "webhook_disabled" and first["body"] == "body of n1"
    assert first["read"] is False and first["read_at"] is None
    assert first["org_id"] == tenant.org_id and first["data"] == {"title": "n1"}

    n2 = page["items"][3]["id"]
    read = await client.post(f"{URL}/{n2}/read", headers=tenant.headers)
    assert read.status_code == 200
    assert read.json()["read"] is True and read.json()["read_at"] is not None
    again = await client.post(f"{URL}/{n2}/read", headers=tenant.headers)
    assert again.json()["read_at"] == read.json()["read_at"]  # idempotent: keeps its time

    page = await notifications(client, tenant.headers)
    assert [n["title"] for n in page["items"]] == ["n5", "n4", "n3", "n1", "n2"]  # unread first
    assert page["unread_count"] == 4
    unread = await notifications(client, tenant.headers, unread="true")
    assert [n["title"] for n in unread["items"]] == ["n5", "n4", "n3", "n1"]

    marked = await client.post(f"{URL}/read-all", headers=tenant.headers)
    assert marked.status_code == 200 and marked.json() == {"marked": 4}
    assert (await client.post(f"{URL}/read-all", headers=tenant.headers)).json() == {"marked": 0}
    page = await notifications(client, tenant.headers)
    assert page["unread_count"] == 0 and all(n["read"] for n in page["items"])
    assert (await notifications(client, tenant.headers, unread="true"))["items"] == []


async def test_pages_follow_the_order_without_gaps_or_repeats(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
):
    for n in range(7):
        await notify(db, tenant.org_id, tenant.owner_id, f"n{n}")
    everything = await notifications(client, tenant.headers)
    for item in everything["items"][1::2]:  # read every other one: the groups interleave by id
        await client.post(f"{URL}/{item['id']}/read", headers=tenant.headers)
    expected = [n["id"] for n in (await notifications(client, tenant.headers))["items"]]

    seen: list[int] = []
    cursor = None
    while True:
        params = {"limit": 2, **({"cursor": cursor} if cursor else {})}
        page = await notifications(client, tenant.headers, **params)
        seen += [n["id"] for n in page["items"]]
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert seen == expected and len(seen) == 7
    unread_ids = [n["id"] for n in everything["items"][0::2]]
    first = await notifications(client, tenant.headers, unread="true", limit=3)
    rest = await notifications(
        client, tenant.headers, unread="true", limit=3, cursor=first["next_cursor"]
    )
    assert [n["id"] for n in first["items"] + rest["items"]] == unread_ids
    assert rest["next_cursor"] is None


async def test_each_notification_is_an_event_for_its_user_only(
    client: httpx.AsyncClient, db: Database, tenant: Tenant
):
    await notify(db, tenant.org_id, tenant.owner_id, "hello")
    [shown] = (await notifications(client, tenant.headers))["items"]
    [event] = await org_events(db, tenant.org_id)
    assert event.type == "notification.new" and event.user_id == tenant.owner_id
    assert event.data == shown  # the notification as the API returns it


async def test_nobody_sees_or_changes_another_users_notifications(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, other_tenant: Tenant
):
    _colleague_id, colleague_key = await tenant.add_member(Role.MEMBER)
    await notify(db, tenant.org_id, tenant.owner_id, "mine")
    await notify(db, other_tenant.org_id, other_tenant.owner_id, "theirs")
    [mine] = (await notifications(client, tenant.headers))["items"]
    [theirs] = (await notifications(client, other_tenant.headers))["items"]
    assert mine["title"] == "mine" and theirs["title"] == "theirs"
    assert (await notifications(client, bearer(colleague_key)))["items"] == []

    for headers in (bearer(colleague_key), other_tenant.headers):
        refused = await client.post(f"{URL}/{mine['id']}/read", headers=headers)
        assert refused.status_code == 404
        assert refused.json()["detail"] == f"Notification {mine['id']} not found"
        await client.post(f"{URL}/read-all", headers=headers)
    missing = await client.post(f"{URL}/999999/read", headers=tenant.headers)
    assert missing.status_code == 404
    [still] = (await notifications(client, tenant.headers))["items"]
    assert still["read"] is False  # neither the 404s nor their read-all touched it
    [theirs_now] = (await notifications(client, other_tenant.headers))["items"]
    assert theirs_now["read"] is True


async def test_a_key_sees_its_organizations_notifications_a_login_sees_all(
    client: httpx.AsyncClient, db: Database, tenant: Tenant, other_tenant: Tenant
):
    # The owner of `tenant` is also a member of `other_tenant`.
    async with db.transaction() as session:
        session.add(Membership(org_id=other_tenant.org_id, user_id=tenant.owner_id, role="member"))
    await notify(db, tenant.org_id, tenant.owner_id, "home")
    await notify(db, other_tenant.org_id, tenant.owner_id, "away")
    by_key = await notifications(client, tenant.headers)
    assert [n["title"] for n in by_key["items"]] == ["home"] and by_key["unread_count"] == 1
    token = (await login(client, tenant.owner_email))["access_token"]
    by_login = await notifications(client, bearer(token))
    assert [n["title"] for n in by_login["items"]] == ["away", "home"]
    away_id = by_login["items"][0]["id"]
    assert (await client.post(f"{URL}/{away_id}/read", headers=tenant.headers)).status_code == 404
    assert (await client.post(f"{URL}/read-all", headers=tenant.headers)).json() == {"marked": 1}
    assert (await notifications(client, bearer(token)))["unread_count"] == 1  # "away" unread


async def test_unauthenticated_and_invalid_requests(client: httpx.AsyncClient, tenant: Tenant):
    for method, path in (
        ("GET", URL),
        ("POST", f"{URL}/1/read"),
        ("POST", f"{URL}/read-all"),
        ("GET", "/v1/users/me/notification-preferences"),
        ("PUT", "/v1/users/me/notification-preferences"),
        ("PATCH", "/v1/users/me/notification-preferences"),
    ):
        response = await client.request(method, path, json={})
        assert response.status_code == 401, (method, path)
    huge = base64.urlsafe_b64encode(b"n:u:99999999999999999999").decode()
    for params in (
        {"limit": 0},
        {"limit": 101},
        {"cursor": "not-a-cursor"},
        {"cursor": huge},
        {"unread": "maybe"},
    ):
        response = await client.get(URL, params=params, headers=tenant.headers)
        assert response.status_code == 422, params
    for bad in ("abc", "0", "99999999999999999999"):
        response = await client.post(f"{URL}/{bad}/read", headers=tenant.headers)
        assert response.status_code == 422, bad

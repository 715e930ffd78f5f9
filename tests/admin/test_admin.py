"""The admin API: platform admins only; organization tier, limits and suspension; users; stats
that agree with the jobs in the database and with /metrics."""

from __future__ import annotations

from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import func, select, update

from genway.db import Database
from genway.jobs.models import Job
from genway.orgs.models import User
from tests.support import PASSWORD, Tenant, bearer, login
from tests.test_tenant_isolation import flatten


@pytest.fixture
async def admin(db: Database, tenant: Tenant) -> Tenant:
    async with db.sessions() as session:
        await session.execute(
            update(User).where(User.id == tenant.owner_id).values(is_platform_admin=True)
        )
        await session.commit()
    return tenant


def admin_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes = []
    for path, route in flatten(app.routes):
        if path.startswith("/api/v1/admin"):
            routes.extend((m, path) for m in sorted(getattr(route, "methods", set()) - {"HEAD"}))
    return routes


async def test_non_admins_get_403_on_every_admin_route(
    app: FastAPI, client: httpx.AsyncClient, other_tenant: Tenant
):
    routes = admin_routes(app)
    assert len(routes) >= 5
    tokens = await login(client, other_tenant.owner_email)
    for method, template in routes:
        url = template.replace("{org_id}", "1").replace("{user_id}", "1")
        for headers in (other_tenant.headers, bearer(tokens["access_token"])):
            response = await client.request(method, url, headers=headers, json={})
            assert response.status_code == 403, (method, template)
            assert response.json() == {
                "detail": "Platform administrators only",
                "message": "Platform administrators only",
                "status_code": 403,
            }
        anonymous = await client.request(method, url, json={})
        assert anonymous.status_code == 401


async def test_admin_lists_and_changes_orgs_and_users(
    client: httpx.AsyncClient, admin: Tenant, other_tenant: Tenant
):
    orgs = (await client.get("/api/v1/admin/orgs", headers=admin.headers)).json()
    assert orgs["total"] == 2 and {o["id"] for o in orgs["items"]} == {
        admin.org_id,
        other_tenant.org_id,
    }
    users = (await client.get("/api/v1/admin/users", headers=admin.headers)).json()
    assert users["total"] == 2
    changed = await client.patch(
        f"/api/v1/admin/orgs/{other_tenant.org_id}",
        json={"tier": "free", "overrides": {"images_per_day": 25, "max_concurrent_jobs": 3}},
        headers=admin.headers,
    )
    assert changed.status_code == 200
    limits = changed.json()["limits"]
    assert limits["images_per_day"] == 25 and limits["max_concurrent_jobs"] == 3
    assert limits["requests_per_window"] == 60
    cleared = await client.patch(
        f"/api/v1/admin/orgs/{other_tenant.org_id}",
        json={"overrides": {"images_per_day": None}},
        headers=admin.headers,
    )
    assert cleared.json()["limits"]["images_per_day"] == 10
    bad = await client.patch(
        f"/api/v1/admin/orgs/{other_tenant.org_id}",
        json={"overrides": {"gpus": 4}},
        headers=admin.headers,
    )
    assert bad.status_code == 422
    missing = await client.patch(
        "/api/v1/admin/orgs/99999", json={"tier": "pro"}, headers=admin.headers
    )
    assert missing.status_code == 404


async def test_suspended_orgs_keys_get_403_with_a_clear_message(
    client: httpx.AsyncClient, admin: Tenant, other_tenant: Tenant
):
    assert (await client.get("/v1/users/me", headers=other_tenant.headers)).status_code == 200
    await client.patch(
        f"/api/v1/admin/orgs/{other_tenant.org_id}",
        json={"status": "suspended"},
        headers=admin.headers,
    )
    refused = await client.get("/v1/users/me", headers=other_tenant.headers)
    assert refused.status_code == 403 and "suspended" in refused.json()["detail"]
    tokens = await login(client, other_tenant.owner_email)
    by_login = await client.get(
        f"/v1/organizations/{other_tenant.org_id}/users", headers=bearer(tokens["access_token"])
    )
    assert by_login.status_code == 403
    await client.patch(
        f"/api/v1/admin/orgs/{other_tenant.org_id}",
        json={"status": "active"},
        headers=admin.headers,
    )
    assert (await client.get("/v1/users/me", headers=other_tenant.headers)).status_code == 200


async def test_deactivated_user_is_refused_and_admin_cannot_lock_themselves_out(
    client: httpx.AsyncClient, admin: Tenant, other_tenant: Tenant
):
    deactivated = await client.patch(
        f"/api/v1/admin/users/{other_tenant.owner_id}",
        json={"is_active": False},
        headers=admin.headers,
    )
    assert deactivated.status_code == 200 and deactivated.json()["is_active"] is False
    assert (await client.get("/v1/users/me", headers=other_tenant.headers)).status_code == 401
    login_attempt = await client.post(
        "/api/v1/auth/login", json={"email": other_tenant.owner_email, "password": PASSWORD}
    )
    assert login_attempt.status_code == 401
    self_lockout = await client.patch(
        f"/api/v1/admin/users/{admin.owner_id}", json={"is_active": False}, headers=admin.headers
    )
    assert self_lockout.status_code == 409


async def test_stats_agree_with_the_database_and_metrics(
    client: httpx.AsyncClient, admin: Tenant, db: Database
):
    url = f"/v1/organizations/{admin.org_id}/jobs"
    for kind_input in ({"seconds": 0}, {"seconds": 5}):
        await client.post(
            url, json={"kind": "diagnostic.sleep", "input": kind_input}, headers=admin.headers
        )
    first = (await client.get(url, headers=admin.headers)).json()["items"][-1]
    await client.post(f"{url}/{first['id']}/cancel", headers=admin.headers)
    stats: dict[str, Any] = (await client.get("/api/v1/admin/stats", headers=admin.headers)).json()
    async with db.sessions() as session:
        counts = dict(
            (await session.execute(select(Job.status, func.count()).group_by(Job.status))).all()
        )
    assert stats["jobs_by_status"]["queued"] == counts.get("queued", 0) == 1
    assert stats["jobs_by_status"]["cancelled"] == counts.get("cancelled", 0) == 1
    assert stats["queue_depth"] == 1 and stats["oldest_queued_age_s"] >= 0
    assert stats["jobs_by_kind"]["diagnostic.sleep"] == {"queued": 1, "cancelled": 1}
    assert stats["organizations"] == 1 and stats["users"] == 1
    assert stats["finished_last_hour"] == 1 and stats["error_rate_last_hour"] == 0.0
    metrics = (await client.get("/metrics")).text
    assert "genway_queue_depth 1.0" in metrics
    assert 'genway_jobs{kind="diagnostic.sleep",status="cancelled"} 1.0' in metrics

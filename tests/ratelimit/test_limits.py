"""Request rate limits, their headers and 429s; job-creation limits; anonymous limits; a tier
change taking effect on the next request; failing open when Redis is unreachable."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from genway.app import create_app
from genway.config import Settings
from genway.db import Database
from genway.orgs.models import Tier
from tests.support import Tenant, bearer, live_server, make_tenant


@pytest.fixture
async def free_tenant(db: Database) -> Tenant:
    return await make_tenant(db, tier=Tier.FREE)


async def test_limit_headers_and_429_after_60_requests(
    client: httpx.AsyncClient, free_tenant: Tenant
):
    url = f"/v1/organizations/{free_tenant.org_id}/users"
    first = await client.get(url, headers=free_tenant.headers)
    assert first.status_code == 200
    assert first.headers["x-ratelimit-limit"] == "60"
    assert first.headers["x-ratelimit-remaining"] == "59"
    assert int(first.headers["x-ratelimit-reset"]) > 0
    assert first.headers["ratelimit-policy"] == '"organization";q=60;w=30'
    assert first.headers["ratelimit"].startswith('"organization";r=59;t=')
    statuses = [(await client.get(url, headers=free_tenant.headers)).status_code for _ in range(59)]
    assert statuses == [200] * 59
    refused = await client.get(url, headers=free_tenant.headers)
    assert refused.status_code == 429
    assert refused.json()["detail"] == "Rate limit exceeded"
    assert refused.json()["status_code"] == 429
    assert 1 <= int(refused.headers["retry-after"]) <= 30
    assert refused.headers["x-ratelimit-remaining"] == "0"


async def test_one_orgs_traffic_does_not_limit_another(
    client: httpx.AsyncClient, free_tenant: Tenant, other_tenant: Tenant
):
    for _ in range(60):
        await client.get("/v1/users/me", headers=free_tenant.headers)
    assert (await client.get("/v1/users/me", headers=free_tenant.headers)).status_code == 429
    assert (await client.get("/v1/users/me", headers=other_tenant.headers)).status_code == 200


async def test_job_creation_limit_is_ten_per_minute_for_free(
    client: httpx.AsyncClient, free_tenant: Tenant
):
    url = f"/v1/organizations/{free_tenant.org_id}/jobs"
    body = {"kind": "diagnostic.sleep", "input": {"seconds": 0}}
    codes = [
        (await client.post(url, json=body, headers=free_tenant.headers)).status_code
        for _ in range(11)
    ]
    assert codes == [201] * 10 + [429]
    refused = await client.post(url, json=body, headers=free_tenant.headers)
    assert refused.json()["scope"] == "job-creation"
    # Reads are still allowed: the job-creation limit is separate from the request limit.
    assert (await client.get(url, headers=free_tenant.headers)).status_code == 200


async def test_admin_tier_change_takes_effect_on_the_next_request(
    client: httpx.AsyncClient, free_tenant: Tenant, tenant: Tenant, db: Database
):
    from sqlalchemy import update

    from genway.orgs.models import User

    async with db.sessions() as session:
        await session.execute(
            update(User).where(User.id == tenant.owner_id).values(is_platform_admin=True)
        )
        await session.commit()
    before = await client.get("/v1/users/me", headers=free_tenant.headers)
    assert before.headers["x-ratelimit-limit"] == "60"
    changed = await client.patch(
        f"/api/v1/admin/orgs/{free_tenant.org_id}", json={"tier": "pro"}, headers=tenant.headers
    )
    assert changed.status_code == 200 and changed.json()["limits"]["requests_per_window"] == 300
    after = await client.get("/v1/users/me", headers=free_tenant.headers)
    assert after.headers["x-ratelimit-limit"] == "300"


async def test_anonymous_endpoints_are_limited_per_address(client: httpx.AsyncClient):
    body = {"email": "nobody@example.com", "password": "irrelevant-password"}
    codes = [
        (await client.post("/api/v1/auth/refresh", json={"refresh_token": "x"})).status_code
        for _ in range(30)
    ]
    assert codes == [401] * 30
    limited = await client.post("/api/v1/auth/login", json=body)
    assert limited.status_code == 429 and limited.json()["scope"] == "anonymous"


@pytest.mark.parametrize("fail_open", [True, False])
async def test_unreachable_redis_fails_open_or_closed(
    fail_open: bool, database_url: str, tmp_path: Path
):
    settings = Settings(
        data_dir=tmp_path,
        database_url=database_url,
        secret_key="k" * 40,
        redis_url="redis://127.0.0.1:1/0",
        ratelimit_fail_open=fail_open,
        embedded_worker=False,
        log_level="CRITICAL",
    )
    app = create_app(settings)
    async with live_server(app) as url:
        tenant = await make_tenant(app.state.db)
        async with httpx.AsyncClient(base_url=url) as client:
            response = await client.get("/v1/users/me", headers=bearer(tenant.key))
            metrics = (await client.get("/metrics")).text
    if fail_open:
        assert response.status_code == 200
    else:
        assert response.status_code == 503
        assert response.json()["status_code"] == 503
    errors = [
        line
        for line in metrics.splitlines()
        if line.startswith("genway_ratelimit_storage_errors_total")
    ]
    assert errors and float(errors[0].split()[-1]) >= 1


async def test_per_user_limit_inside_the_organizations(
    client: httpx.AsyncClient, free_tenant: Tenant, db: Database
):
    from genway.auth.permissions import Role

    admin = await client.get("/v1/users/me", headers=free_tenant.headers)
    assert admin.status_code == 200
    _member_id, member_key = await free_tenant.add_member(Role.MEMBER)
    async with db.sessions() as session:
        from sqlalchemy import update

        from genway.orgs.models import Organization

        await session.execute(
            update(Organization)
            .where(Organization.id == free_tenant.org_id)
            .values(overrides={"user_requests_per_window": 5})
        )
        await session.commit()
    codes = [
        (await client.get("/v1/users/me", headers=bearer(member_key))).status_code for _ in range(6)
    ]
    assert codes == [200] * 5 + [429]
    refused = await client.get("/v1/users/me", headers=bearer(member_key))
    assert refused.json()["scope"] == "user"
    # The owner, another user of the same organization, is not held back by the member.
    assert (await client.get("/v1/users/me", headers=free_tenant.headers)).status_code == 200

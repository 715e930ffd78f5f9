"""Limits hold across API processes: two `genway serve` processes sharing PostgreSQL and Redis
let exactly 60 of 200 concurrent requests from one free organization through."""

from __future__ import annotations

import asyncio
import secrets
from pathlib import Path

from genway.orgs.models import Tier
from tests.conftest import REDIS_URL, require_service
from tests.jobs.processes import Processes, open_database
from tests.support import bearer, make_tenant


async def test_exactly_60_of_200_requests_succeed_across_two_api_processes(
    postgres_ready: str, tmp_path: Path
):
    redis_url = require_service(REDIS_URL, "redis")
    async with open_database(postgres_ready) as database:
        tenant = await make_tenant(database, tier=Tier.FREE)
    prefix = f"genway-test-{secrets.token_hex(4)}"
    with Processes(
        tmp_path,
        postgres_ready,
        redis_url=redis_url,
        extra_env={"GENWAY_RATELIMIT_KEY_PREFIX": prefix},
    ) as processes:
        apis = [processes.api("api-1"), processes.api("api-2")]
        for api in apis:
            await api.wait_ready()
        clients = [api.client() for api in apis]
        try:
            responses = await asyncio.gather(
                *(
                    clients[i % 2].get("/v1/users/me", headers=bearer(tenant.key))
                    for i in range(200)
                )
            )
        finally:
            for client in clients:
                await client.aclose()
    codes = [r.status_code for r in responses]
    assert codes.count(200) == 60, processes.logs()
    assert codes.count(429) == 140
    for response in responses:
        assert response.headers["x-ratelimit-limit"] == "60"
        if response.status_code == 429:
            assert response.json() == {
                "detail": "Rate limit exceeded",
                "message": "Rate limit exceeded",
                "status_code": 429,
                "limit": 60,
                "window_s": 30,
                "scope": "organization",
            }
            assert response.headers["x-ratelimit-remaining"] == "0"
            assert 1 <= int(response.headers["retry-after"]) <= 30
    # Each process got 100 requests and refused some: with a counter of its own, each would have
    # let 60 through (120 in all). Which process let the 60 through depends on timing.
    refused_by = {str(r.url).split("/v1")[0] for r in responses if r.status_code == 429}
    assert len(refused_by) == 2

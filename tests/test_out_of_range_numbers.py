"""Numbers beyond what the database holds (ids past 2^63-1, huge `skip`) are a 422 naming the
field, never a 500: in paths, queries, headers and bodies, on every dialect."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from tests.support import Tenant

HUGE = 2**63  # one past the largest id
WAY_TOO_BIG = 10**28


def cases(org: int) -> list[tuple[str, str, dict[str, Any]]]:
    base = f"/v1/organizations/{org}"
    return [
        ("GET", f"/v1/organizations/{HUGE}", {}),
        ("GET", f"{base}/jobs/{HUGE}", {}),
        ("GET", f"{base}/jobs/-2254", {}),
        ("POST", f"{base}/jobs/{HUGE}/cancel", {}),
        ("GET", f"{base}/api-keys/{HUGE}", {}),
        ("DELETE", f"/api/v1/auth/keys/{HUGE}", {}),
        ("GET", f"{base}/projects/{HUGE}", {}),
        ("PUT", f"/api/v1/projects/{WAY_TOO_BIG}", {"json": {"name": "x"}}),
        ("GET", f"/v1/jobs/{WAY_TOO_BIG}/list", {}),
        ("GET", f"{base}/agent/run/{HUGE}", {}),
        ("GET", f"{base}/webhooks/{HUGE}", {}),
        ("GET", f"{base}/members/{HUGE}", {}),
        ("GET", f"/api/v1/jobs/{HUGE}", {}),
        ("GET", "/v1/organizations", {"params": {"skip": WAY_TOO_BIG}}),
        ("GET", f"{base}/uploads", {"params": {"skip": WAY_TOO_BIG}}),
        ("GET", "/v1/projects", {"params": {"skip": WAY_TOO_BIG}}),
        ("GET", "/api/v1/jobs", {"headers": {"X-Organization-Id": str(HUGE)}}),
        ("POST", f"{base}/jobs", {"json": {"kind": "diagnostic.sleep", "project_id": HUGE}}),
        ("POST", "/v1/run-agent", {"json": {"project_id": WAY_TOO_BIG, "agent_type": "code"}}),
        ("POST", f"{base}/agent/run", {"json": {"prompt": "x", "project_id": HUGE}}),
        ("POST", f"{base}/agent/run/resume", {"json": {"agent_run_id": HUGE, "prompt": "x"}}),
    ]


@pytest.mark.parametrize("index", range(21))
async def test_out_of_range_numbers_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: Tenant, index: int
) -> None:
    method, path, options = cases(tenant.org_id)[index]
    headers = {**tenant.headers, **options.pop("headers", {})}
    response = await client.request(method, path, headers=headers, **options)
    assert response.status_code == 422, (method, path, response.status_code, response.text)
    field = response.json()["detail"][0]["loc"][-1]
    assert isinstance(field, str) and field, response.text

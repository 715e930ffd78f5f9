"""Input the database or the parser cannot hold (ids past 2^31-1, huge `skip`, dates without a
UTC form, JSON nested 10,000 deep) is refused with a 4xx naming what is wrong, never a 500: in
paths, queries, headers and bodies, on every dialect."""

from __future__ import annotations

from typing import Any

import httpx

from tests.support import Tenant

HUGE = 2**31  # one past the largest id (PostgreSQL INTEGER keys)
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
        ("GET", f"{base}/projects/1/revisions/{HUGE}", {}),
        ("GET", f"{base}/projects/1/files/a.py", {"params": {"revision": HUGE}}),
        ("GET", f"{base}/jobs/1/events", {"params": {"after": HUGE}}),
    ]


async def test_out_of_range_numbers_are_422_naming_the_field(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    wrong = []
    for method, path, options in cases(tenant.org_id):
        headers = {**tenant.headers, **options.pop("headers", {})}
        response = await client.request(method, path, headers=headers, **options)
        detail = response.json().get("detail") if response.status_code == 422 else None
        field = detail[0]["loc"][-1] if isinstance(detail, list) and detail else None
        if not (isinstance(field, str) and field):
            wrong.append((method, path, response.status_code, response.text[:200]))
    assert not wrong, wrong


async def test_deep_json_and_dates_without_a_utc_form_are_refused_not_500(
    client: httpx.AsyncClient, tenant: Tenant
) -> None:
    deep = b'{"prompt": ' + b"[" * 10_000 + b"]" * 10_000 + b"}"
    for path in ("/prompt", "/api/prompt", "/queue", "/interrupt"):
        response = await client.post(
            path, content=deep, headers={**tenant.headers, "content-type": "application/json"}
        )
        assert response.status_code == 400, (path, response.status_code, response.text)
        assert "nested too deeply" in response.text
    early = await client.get(
        f"/v1/organizations/{tenant.org_id}/jobs",
        params={"created_after": "0001-01-01T00:00:00+14:00"},
        headers=tenant.headers,
    )
    assert early.status_code == 422, early.text
    assert early.json()["detail"][0]["loc"] == ["query", "created_after"]
    fine = await client.get(
        f"/v1/organizations/{tenant.org_id}/jobs",
        params={"created_after": "2026-01-01T00:00:00+14:00"},
        headers=tenant.headers,
    )
    assert fine.status_code == 200

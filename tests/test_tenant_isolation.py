"""Every `/v1/organizations/{org_id}/...` route, enumerated from the app itself, refuses another
organization's credentials with 404 and leaks none of the target organization's data."""

from __future__ import annotations

import re
from typing import Any

import httpx
import pytest
from fastapi import FastAPI
from fastapi.routing import APIRoute, APIWebSocketRoute

from genway.config import Settings
from tests.support import Tenant, bearer, login

ORG_PREFIX = "/v1/organizations/{org_id}"
PARAM = re.compile(r"{([^}:]+)(:[^}]+)?}")


def flatten(routes: list[Any], prefix: str = "") -> list[tuple[str, Any]]:
    """(full path, route) for every route, descending into included routers."""
    flat: list[tuple[str, Any]] = []
    for route in routes:
        original = getattr(route, "original_router", None)
        if original is not None:
            flat.extend(flatten(original.routes, prefix + route.include_context.prefix))
        elif hasattr(route, "path"):
            flat.append((prefix + route.path, route))
    return flat


def org_routes(app: FastAPI) -> list[tuple[str, str]]:
    routes: list[tuple[str, str]] = []
    for path, route in flatten(app.routes):
        if isinstance(route, APIRoute) and path.startswith(ORG_PREFIX):
            routes.extend((method, path) for method in sorted(route.methods - {"HEAD"}))
    return routes


def fill(path: str, org_id: int, victim_ids: dict[str, int]) -> str:
    def value(match: re.Match[str]) -> str:
        name = match.group(1)
        if name == "org_id":
            return str(org_id)
        if name.endswith("path") or name in {"name", "filename"}:
            return "README.md"
        return str(victim_ids.get(name, 1))

    return PARAM.sub(value, path)


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # Two requests per route (over 100) would exceed the attacker's own request limits; those
    # limits are tested elsewhere, and here they would only hide the routes after the 60th.
    return settings.model_copy(update={"ratelimit_enabled": False})


async def test_every_org_route_refuses_another_orgs_key(
    app: FastAPI, client: httpx.AsyncClient, tenant: Tenant, other_tenant: Tenant
):
    routes = org_routes(app)
    assert len(routes) >= 10, routes
    victim_ids = {"user_id": tenant.owner_id, "key_id": 1}
    attacker_tokens = await login(client, other_tenant.owner_email)
    credentials = {
        "api key": other_tenant.headers,
        "login": bearer(attacker_tokens["access_token"]),
    }
    for method, template in routes:
        url = fill(template, tenant.org_id, victim_ids)
        for label, headers in credentials.items():
            response = await client.request(method, url, headers=headers, json={})
            assert response.status_code == 404, (label, method, template, response.text)
            assert response.json() == {
                "detail": f"Organization {tenant.org_id} not found",
                "message": f"Organization {tenant.org_id} not found",
                "status_code": 404,
            }
            assert tenant.owner_email not in response.text


async def test_websocket_org_routes_are_covered_by_their_own_tests(app: FastAPI):
    # WebSocket routes under an org prefix cannot be exercised with plain HTTP; each one must
    # have an isolation test in its domain folder. This list is the reminder.
    ws_routes = [p for p, r in flatten(app.routes) if isinstance(r, APIWebSocketRoute)]
    covered = {
        # tests/webhooks/test_org_stream.py::test_credentials_and_arguments_are_checked
        f"{ORG_PREFIX}/events",
    }
    org_routes = {path for path in ws_routes if path.startswith(ORG_PREFIX)}
    assert org_routes <= covered, org_routes - covered

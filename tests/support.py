"""Test support: a real uvicorn server on 127.0.0.1 and tenants made through the services."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import httpx
import uvicorn
from fastapi import FastAPI

from genway.auth.permissions import Role
from genway.db import Database
from genway.keys.service import create_api_key
from genway.orgs.models import Membership, Tier
from genway.orgs.service import create_organization, create_user, get_user_by_email

PASSWORD = "correct-horse-battery"


def keep_alive_s(app: FastAPI) -> int:
    """Genway's idle keep-alive for its own apps (receivers and fakes get the same default)."""
    settings = getattr(app.state, "settings", None)
    return int(settings.http_keep_alive_s) if settings is not None else 75


class LiveServer:
    """An app served by uvicorn on a free loopback port, inside the test's event loop."""

    def __init__(self, app: FastAPI) -> None:
        self.app = app
        self.server = uvicorn.Server(
            uvicorn.Config(
                app,
                host="127.0.0.1",
                port=0,
                log_level="warning",
                lifespan="on",
                timeout_keep_alive=keep_alive_s(app),
            )
        )
        self._task: asyncio.Task[None] | None = None

    async def start(self) -> str:
        self._task = asyncio.create_task(self.server.serve())
        while not self.server.started:
            if self._task.done():
                self._task.result()
            await asyncio.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        self.server.should_exit = True
        if self._task is not None:
            with contextlib.suppress(asyncio.CancelledError):
                await self._task


@contextlib.asynccontextmanager
async def live_server(app: FastAPI) -> AsyncIterator[str]:
    server = LiveServer(app)
    url = await server.start()
    try:
        yield url
    finally:
        await server.stop()


@dataclass
class Tenant:
    """An organization with its owner, the owner's key, and helpers to add members."""

    org_id: int
    owner_id: int
    owner_email: str
    key: str
    database: Database

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.key}"}

    async def add_member(self, role: Role, *, email: str | None = None) -> tuple[int, str]:
        """A new member with `role` and a key of that role: (user id, key)."""
        email = email or f"{role}-{secrets.token_hex(4)}@example.com"
        async with self.database.transaction() as session:
            user = await get_user_by_email(session, email) or await create_user(
                session, email, password=PASSWORD
            )
            session.add(Membership(org_id=self.org_id, user_id=user.id, role=role))
            await session.flush()
            _key, secret = await create_api_key(
                session, org_id=self.org_id, user_id=user.id, maker_role=role, name="test"
            )
            return user.id, secret


async def make_tenant(
    database: Database, name: str | None = None, tier: Tier = Tier.ENTERPRISE
) -> Tenant:
    name = name or f"org-{secrets.token_hex(4)}"
    email = f"owner-{name}@example.com"
    async with database.transaction() as session:
        owner = await create_user(session, email, password=PASSWORD, full_name=f"Owner {name}")
        org = await create_organization(session, name, owner, tier=tier)
        _key, secret = await create_api_key(
            session, org_id=org.id, user_id=owner.id, maker_role=Role.OWNER, name="owner"
        )
        return Tenant(org.id, owner.id, email, secret, database)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


async def login(client: httpx.AsyncClient, email: str, password: str = PASSWORD) -> dict[str, Any]:
    response = await client.post("/api/v1/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    return dict(response.json())

"""Fixtures: every API test runs on SQLite and on PostgreSQL (skipped locally without it;
in CI, where `CI` is set, a missing PostgreSQL or Redis fails the run instead)."""

from __future__ import annotations

import asyncio
import os
import shutil
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy import text

from genway.app import create_app
from genway.config import Settings
from genway.db import Base, Database
from genway.migrate import migrate
from tests.support import Tenant, live_server, make_tenant

PG_URL = os.environ.get("GENWAY_TEST_DATABASE_URL")
REDIS_URL = os.environ.get("GENWAY_TEST_REDIS_URL")
IN_CI = os.environ.get("CI", "").lower() in ("1", "true", "yes")


def require_service(url: str | None, name: str) -> str:
    if url:
        return url
    if IN_CI:
        pytest.fail(f"{name} is required in CI but its GENWAY_TEST_* URL is not set")
    pytest.skip(f"{name} not configured (set GENWAY_TEST_{name.upper()}_URL)")


def _reset_postgres(url: str) -> None:
    async def reset() -> None:
        database = Database(url)
        async with database.engine.begin() as connection:
            await connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
            await connection.execute(text("CREATE SCHEMA public"))
        await database.dispose()
        await migrate(url)

    asyncio.run(reset())


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("template") / "genway.db"
    asyncio.run(migrate(f"sqlite+aiosqlite:///{path}"))
    return path


@pytest.fixture(scope="session")
def postgres_ready() -> Iterator[str]:
    url = require_service(PG_URL, "database")
    _reset_postgres(url)
    yield url


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        template: Path = request.getfixturevalue("sqlite_template")
        target = tmp_path / "genway.db"
        shutil.copy(template, target)
        return f"sqlite+aiosqlite:///{target}"
    url: str = request.getfixturevalue("postgres_ready")
    asyncio.run(_truncate(url))
    return url


async def _truncate(url: str) -> None:
    database = Database(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with database.engine.begin() as connection:
        await connection.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await database.dispose()


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(
        data_dir=tmp_path / "data",
        database_url=database_url,
        secret_key="test-secret-key-0123456789abcdef0123456789",
        log_json=True,
        log_level="WARNING",
        embedded_worker=False,
    )


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
async def server(app: FastAPI) -> AsyncIterator[str]:
    async with live_server(app) as url:
        yield url


@pytest.fixture
async def client(server: str) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=server, timeout=30) as http:
        yield http


@pytest.fixture
def db(app: FastAPI, server: str) -> Database:
    database: Database = app.state.db
    return database


@pytest.fixture
async def tenant(db: Database) -> Tenant:
    return await make_tenant(db)


@pytest.fixture
async def other_tenant(db: Database) -> Tenant:
    return await make_tenant(db)

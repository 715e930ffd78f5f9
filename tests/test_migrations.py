"""Every migration has a working downgrade: head → base → head on each database."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect
from typer.testing import CliRunner

from genway.cli import app as cli
from genway.db import Database
from genway.migrate import current_revision, migrate
from genway.models import Base


async def _tables(url: str) -> set[str]:
    database = Database(url)
    async with database.engine.connect() as connection:
        names = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
    await database.dispose()
    return names - {"alembic_version"}


async def test_upgrade_downgrade_upgrade(database_url: str):
    expected = set(Base.metadata.tables)
    assert await _tables(database_url) == expected
    await migrate(database_url, "base")
    assert await current_revision(database_url) is None
    assert await _tables(database_url) == set()
    head = await migrate(database_url, "head")
    assert await current_revision(database_url) == head
    assert await _tables(database_url) == expected


def test_cli_migrate_to_revision_and_back(database_url: str, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("GENWAY_DATABASE_URL", database_url)
    runner = CliRunner()
    down = runner.invoke(cli, ["migrate", "--revision", "base"])
    assert down.exit_code == 0 and "revision base" in down.output
    up = runner.invoke(cli, ["migrate"])
    assert up.exit_code == 0 and "revision" in up.output

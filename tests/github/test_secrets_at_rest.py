"""Secrets at rest: a project's secrets and a GitHub token are stored encrypted, and
`genway secrets rotate` encrypts every stored secret again with the newest key."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from cryptography.fernet import Fernet
from sqlalchemy import text
from typer.testing import CliRunner

from genway.app import create_app
from genway.cli import app as cli
from genway.config import Settings
from genway.db import Database
from tests.support import bearer, live_server

runner = CliRunner()
SECRET = "s3cret-at-rest-value"


async def _stored(settings: Settings) -> tuple[str, str]:
    database = Database(settings.resolved_database_url)
    try:
        async with database.engine.connect() as connection:
            project = (
                await connection.execute(text("SELECT secrets_encrypted FROM projects"))
            ).one()
            hook = (await connection.execute(text("SELECT secret FROM webhook_endpoints"))).one()
            return str(project[0]), str(hook[0])
    finally:
        await database.dispose()


async def _make_secrets(settings: Settings, key: str, org_id: int) -> None:
    async with live_server(create_app(settings)) as url, httpx.AsyncClient(base_url=url) as client:
        project = await client.post(
            f"/v1/organizations/{org_id}/projects",
            json={"name": "p", "secrets": {"API_TOKEN": SECRET}},
            headers=bearer(key),
        )
        assert project.status_code == 201, project.text
        hook = await client.post(
            f"/v1/organizations/{org_id}/webhooks",
            json={"url": "http://127.0.0.1:9/hook"},
            headers=bearer(key),
        )
        assert hook.status_code == 201, hook.text


def test_rotation_reencrypts_every_stored_secret_with_the_newest_key(
    monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path
) -> None:
    monkeypatch.setenv("GENWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GENWAY_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("GENWAY_SECRET_KEY", "rotation-test-secret-key-0123456789abcdef")
    monkeypatch.setenv("GENWAY_WEBHOOK_ALLOW_PRIVATE", "true")
    monkeypatch.setenv("GENWAY_WEBHOOK_ALLOW_HTTP", "true")
    created = runner.invoke(
        cli, ["orgs", "create", "--name", "acme", "--owner-email", "o@acme.io", "--json"]
    )
    assert created.exit_code == 0, created.output
    org = json.loads(created.stdout)
    asyncio.run(_make_secrets(Settings(), org["api_key"], org["organization_id"]))
    before_project, before_hook = asyncio.run(_stored(Settings()))
    assert SECRET not in before_project

    new_key = Fernet.generate_key().decode()
    monkeypatch.setenv("GENWAY_ENCRYPTION_KEYS", new_key)
    rotated = runner.invoke(cli, ["secrets", "rotate", "--json"])
    assert rotated.exit_code == 0, rotated.output
    assert json.loads(rotated.stdout) == {"rotated": 2, "unreadable": []}

    after_project, after_hook = asyncio.run(_stored(Settings()))
    assert (after_project, after_hook) != (before_project, before_hook)
    newest = Fernet(new_key.encode())  # the new key alone now opens both
    assert json.loads(newest.decrypt(after_project.encode())) == {"API_TOKEN": SECRET}
    assert newest.decrypt(after_hook.encode()).decode().startswith("whsec_")

    monkeypatch.setenv("GENWAY_ENCRYPTION_KEYS", Fernet.generate_key().decode())
    monkeypatch.setenv("GENWAY_SECRET_KEY", "another-secret-key-0123456789abcdef0123")
    lost = runner.invoke(cli, ["secrets", "rotate", "--json"])
    assert lost.exit_code == 1  # no configured key opens them: said, and nothing changed
    assert "projects.secrets_encrypted" in lost.output
    assert asyncio.run(_stored(Settings())) == (after_project, after_hook)

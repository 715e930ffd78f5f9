"""The `genway` CLI: org, key and user creation, JSON output, clear errors."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from genway.app import create_app
from genway.cli import app as cli
from genway.config import Settings
from tests.support import bearer, live_server

runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Settings:
    monkeypatch.setenv("GENWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GENWAY_DATA_DIR", str(tmp_path / "data"))
    return Settings()


def invoke(*args: str, stdin: str | None = None):
    return runner.invoke(cli, list(args), input=stdin)


def get_me(settings: Settings, key: str) -> httpx.Response:
    async def call() -> httpx.Response:
        async with live_server(create_app(settings)) as url:
            async with httpx.AsyncClient(base_url=url) as client:
                return await client.get("/v1/users/me", headers=bearer(key))

    return asyncio.run(call())


def test_orgs_create_json_prints_a_working_key(cli_env: Settings):
    result = invoke("orgs", "create", "--name", "acme", "--owner-email", "o@acme.io", "--json")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"organization_id", "name", "user_id", "api_key"}
    assert data["name"] == "acme"
    assert isinstance(data["organization_id"], int) and data["api_key"].startswith("gw_")
    response = get_me(cli_env, data["api_key"])
    assert response.status_code == 200 and response.json()["email"] == "o@acme.io"


def test_keys_create_for_a_member_with_role(cli_env: Settings):
    org = json.loads(
        invoke("orgs", "create", "--name", "beta", "--owner-email", "b@beta.io", "--json").stdout
    )
    result = invoke(
        "keys",
        "create",
        "--org",
        str(org["organization_id"]),
        "--email",
        "b@beta.io",
        "--role",
        "viewer",
        "--json",
    )
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data) == {"api_key", "key_id"}
    assert get_me(cli_env, data["api_key"]).status_code == 200


def test_users_create_with_password_from_stdin(cli_env: Settings):
    result = invoke(
        "users",
        "create",
        "--email",
        "admin@x.io",
        "--password-stdin",
        "--platform-admin",
        "--json",
        stdin="a-long-password\n",
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["platform_admin"] is True


@pytest.mark.parametrize(
    ("args", "stdin", "message"),
    [
        (
            ("orgs", "create", "--name", "X", "--slug", "Bad Slug", "--owner-email", "x@y.io"),
            None,
            "slug",
        ),
        (("keys", "create", "--org", "999", "--email", "nobody@x.io"), None, "No user"),
        (("users", "create", "--email", "not-an-email"), None, "valid email"),
        (("users", "create", "--email", "s@x.io", "--password-stdin"), "short\n", "at least"),
        (("migrate", "--revision", "nope"), None, "Unknown migration revision"),
    ],
)
def test_cli_errors_are_one_clear_line(cli_env: Settings, args, stdin, message):
    result = invoke(*args, stdin=stdin)
    assert result.exit_code == 1
    assert message in result.output
    assert "Traceback" not in result.output


def test_orgs_create_takes_a_display_name_and_derives_a_free_slug(cli_env: Settings):
    names = []
    for _ in range(2):
        result = invoke(
            "orgs", "create", "--name", "Acme Inc.", "--owner-email", "o@acme.io", "--json"
        )
        assert result.exit_code == 0, result.output
        names.append(json.loads(result.stdout)["name"])
    assert names == ["acme-inc", "acme-inc-2"]


def test_duplicate_org_name_fails(cli_env: Settings):
    assert invoke("orgs", "create", "--name", "dup", "--owner-email", "d@x.io").exit_code == 0
    again = invoke("orgs", "create", "--name", "dup", "--owner-email", "d@x.io")
    assert again.exit_code == 1 and "already exists" in again.output


def test_the_default_database_is_private_to_its_user(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    monkeypatch.delenv("GENWAY_DATABASE_URL", raising=False)
    monkeypatch.setenv("GENWAY_DATA_DIR", str(tmp_path / "data"))
    result = invoke("migrate")
    assert result.exit_code == 0, result.output
    database = tmp_path / "data" / "genway.db"
    assert database.stat().st_size > 0  # migrated in place
    assert database.stat().st_mode & 0o777 == 0o600


async def test_first_run_secrets_go_to_a_private_file_when_output_is_not_a_terminal(
    database_url: str, tmp_path: Path
):
    from tests.jobs.processes import Processes

    with Processes(tmp_path / "processes", database_url) as processes:
        api = processes.api("api", log_level="INFO")
        await api.wait_ready()
        output = api.log_path.read_text()
        credentials = tmp_path / "processes" / "data" / "first-run-credentials.txt"
        assert str(credentials) in output
        assert credentials.stat().st_mode & 0o777 == 0o600
        key = credentials.read_text().split("owner API key: ")[1].strip()
        assert key.startswith("gw_") and key not in output
        async with api.client() as client:
            me = await client.get("/v1/users/me", headers=bearer(key))
        assert me.status_code == 200 and me.json()["email"] == "owner@genway.local"

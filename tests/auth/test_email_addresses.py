"""Email addresses are checked for syntax only: internal deployments use special-use domains
(`.test`, `.local`, `.internal`) and dotless hosts, and nothing is looked up in DNS."""

from __future__ import annotations

import json
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from genway.cli import app as cli
from genway.config import Settings
from tests.support import PASSWORD

INTERNAL_ADDRESSES = ["a@acme.test", "owner@genway.local", "ops@corp.internal", "root@localhost"]
runner = CliRunner()


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, database_url: str, tmp_path: Path) -> Settings:
    monkeypatch.setenv("GENWAY_DATABASE_URL", database_url)
    monkeypatch.setenv("GENWAY_DATA_DIR", str(tmp_path / "data"))
    return Settings()


async def test_registration_accepts_internal_domains_and_refuses_bad_syntax(
    client: httpx.AsyncClient,
):
    for email in INTERNAL_ADDRESSES:
        registered = await client.post(
            "/api/v1/auth/register", json={"email": email, "password": PASSWORD}
        )
        assert registered.status_code == 201, (email, registered.text)
        assert registered.json()["email"] == email
        login = await client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
        assert login.status_code == 200, (email, login.text)
    for bad in ["not-an-email", "a@b@acme.test", "a b@acme.test", "a@-acme.test", "@acme.test"]:
        refused = await client.post(
            "/api/v1/auth/register", json={"email": bad, "password": PASSWORD}
        )
        assert refused.status_code == 422, (bad, refused.text)
        assert refused.json()["detail"][0]["loc"] == ["body", "email"]


def test_cli_user_and_org_owner_accept_internal_domains(cli_env: Settings):
    user = runner.invoke(cli, ["users", "create", "--email", "a@acme.test", "--json"])
    assert user.exit_code == 0, user.output
    assert json.loads(user.stdout)["email"] == "a@acme.test"
    org = runner.invoke(
        cli,
        ["orgs", "create", "--name", "internal", "--owner-email", "owner@corp.internal", "--json"],
    )
    assert org.exit_code == 0, org.output
    assert json.loads(org.stdout)["api_key"].startswith("gw_")


@pytest.mark.parametrize("command", ["users", "orgs"])
def test_cli_refuses_an_address_that_is_not_one(cli_env: Settings, command: str):
    args = (
        ["users", "create", "--email", "not-an-email"]
        if command == "users"
        else ["orgs", "create", "--name", "bad-owner", "--owner-email", "not-an-email"]
    )
    result = runner.invoke(cli, args)
    assert result.exit_code == 1
    assert "not a valid email address" in result.output and "Traceback" not in result.output

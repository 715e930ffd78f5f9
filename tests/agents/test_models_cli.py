"""`genway models`: the routing table, with which providers are configured."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from genway.cli import app as cli

runner = CliRunner()


def test_models_shows_routes_and_configured_providers(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
):
    routes = tmp_path / "routes.json"
    routes.write_text(json.dumps({"code": ["openai:llama3.1:8b", "anthropic:claude-haiku-4-5"]}))
    monkeypatch.setenv("GENWAY_OPENAI_BASE_URL", "http://127.0.0.1:11434/v1")
    monkeypatch.delenv("GENWAY_ANTHROPIC_BASE_URL", raising=False)
    monkeypatch.delenv("GENWAY_ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("GENWAY_ROUTING_FILE", str(routes))

    shown = runner.invoke(cli, ["models", "--json"])
    assert shown.exit_code == 0, shown.output
    data = json.loads(shown.output)
    assert data["routes"]["code"] == ["openai:llama3.1:8b", "anthropic:claude-haiku-4-5"]
    assert data["routes"]["judge"] == ["openai:gpt-4o", "anthropic:claude-sonnet-4-6"]
    providers = {p["name"]: p for p in data["providers"]}
    assert providers["openai"]["configured"] and not providers["anthropic"]["configured"]

    table = runner.invoke(cli, ["models"])
    assert table.exit_code == 0
    assert "anthropic:claude-haiku-4-5 ✗" in table.output and "openai: configured" in table.output

    routes.write_text('{"code": "not a list"}')
    broken = runner.invoke(cli, ["models"])
    assert broken.exit_code == 1 and "non-empty list" in broken.output

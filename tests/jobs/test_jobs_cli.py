"""`genway jobs ...` against a running Genway: submit with a live progress bar, list, show,
cancel, and clear failures."""

from __future__ import annotations

import asyncio
import json

import pytest
from typer.testing import CliRunner

from genway.cli import app as cli
from genway.config import Settings
from tests.support import Tenant

runner = CliRunner()


@pytest.fixture
def settings(settings: Settings) -> Settings:
    return settings.model_copy(update={"embedded_worker": True})


@pytest.fixture
def cli_env(monkeypatch: pytest.MonkeyPatch, server: str, tenant: Tenant) -> None:
    monkeypatch.setenv("GENWAY_URL", server)
    monkeypatch.setenv("GENWAY_API_KEY", tenant.key)


async def invoke(*args: str):
    # The CLI is synchronous; the server runs in this event loop, so the CLI gets a thread.
    return await asyncio.to_thread(runner.invoke, cli, list(args))


async def test_submit_wait_shows_progress_and_exits_zero(cli_env: None):
    result = await invoke(
        "jobs",
        "submit",
        "diagnostic.sleep",
        "--input",
        '{"seconds": 0.3, "steps": 3}',
        "--wait",
        "--json",
    )
    assert result.exit_code == 0, result.output
    job = json.loads(result.stdout.strip().splitlines()[-1])
    assert job["status"] == "succeeded" and job["result"] == {"slept_s": 0.3, "steps": 3}


async def test_failed_job_exits_non_zero(cli_env: None):
    result = await invoke(
        "jobs", "submit", "diagnostic.sleep", "--input", '{"fail": true}', "--wait", "--json"
    )
    assert result.exit_code == 1
    assert json.loads(result.stdout.strip().splitlines()[-1])["status"] == "failed"


async def test_list_show_cancel(cli_env: None):
    submitted = await invoke(
        "jobs", "submit", "diagnostic.sleep", "--input", '{"seconds": 30}', "--json"
    )
    job_id = json.loads(submitted.stdout)["id"]
    listed = await invoke("jobs", "list", "--json")
    assert job_id in [j["id"] for j in json.loads(listed.stdout)["items"]]
    shown = await invoke("jobs", "show", str(job_id), "--json")
    assert json.loads(shown.stdout)["id"] == job_id
    cancelled = await invoke("jobs", "cancel", str(job_id))
    assert cancelled.exit_code == 0 and "ancel" in cancelled.output


async def test_errors_are_one_line(cli_env: None):
    missing = await invoke("jobs", "show", "999999")
    assert missing.exit_code == 1 and "404" in missing.output and "Traceback" not in missing.output
    bad_json = await invoke("jobs", "submit", "diagnostic.sleep", "--input", "{nope")
    assert bad_json.exit_code == 1 and "not valid JSON" in bad_json.output
    unknown = await invoke("jobs", "submit", "no.such.kind")
    assert unknown.exit_code == 1 and "Unknown job kind" in unknown.output

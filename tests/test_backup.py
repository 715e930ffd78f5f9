"""`genway backup` while Genway runs, `genway restore` into a fresh data directory: the
organizations, keys, projects with their git history and encrypted secrets come back."""

from __future__ import annotations

import asyncio
import io
import json
import tarfile
from pathlib import Path

import httpx
import pytest
from typer.testing import CliRunner

from genway.app import create_app
from genway.cli import app as cli
from genway.config import Settings
from tests.support import bearer, live_server

runner = CliRunner()


def invoke(*args: str) -> tuple[int, str]:
    result = runner.invoke(cli, list(args))
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise result.exception
    return result.exit_code, result.output + (result.stderr if result.stderr_bytes else "")


@pytest.fixture
def sqlite_only(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Path:
    """A data directory with the default SQLite database; the environment points at it."""
    data = tmp_path / "data"
    monkeypatch.delenv("GENWAY_DATABASE_URL", raising=False)
    monkeypatch.delenv("GENWAY_SECRET_KEY", raising=False)
    monkeypatch.setenv("GENWAY_DATA_DIR", str(data))
    return data


async def _fill_and_back_up(key: str, org_id: int, archive: Path) -> dict[str, object]:
    """Make a project with a file and a secret, then back up while the server is running."""
    async with live_server(create_app(Settings())) as url, httpx.AsyncClient(base_url=url) as c:
        project = await c.post(
            f"/v1/organizations/{org_id}/projects",
            json={"name": "kept", "secrets": {"TOKEN": "kept-secret"}},
            headers=bearer(key),
        )
        assert project.status_code == 201, project.text
        pid = project.json()["id"]
        put = await c.put(
            f"/v1/organizations/{org_id}/projects/{pid}/files",
            json={"path": "src/app.py", "content": "print('hi')\n"},
            headers=bearer(key),
        )
        assert put.status_code in (200, 201), put.text
        code, output = await asyncio.to_thread(invoke, "backup", str(archive), "--json")
        assert code == 0, output
        return dict(json.loads(output))


async def _read_back(key: str, org_id: int) -> tuple[list[dict[str, object]], str, int]:
    async with live_server(create_app(Settings())) as url, httpx.AsyncClient(base_url=url) as c:
        projects = await c.get(f"/v1/organizations/{org_id}/projects", headers=bearer(key))
        assert projects.status_code == 200, projects.text
        items = list(projects.json()["items"])
        pid = items[0]["id"]
        file = await c.get(
            f"/v1/organizations/{org_id}/projects/{pid}/files/src/app.py", headers=bearer(key)
        )
        commits = await c.get(
            f"/v1/organizations/{org_id}/projects/{pid}/commits", headers=bearer(key)
        )
        return items, file.json()["content"], commits.json()["total"]


def test_backup_of_a_running_genway_restores_into_a_new_data_directory(
    sqlite_only: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert invoke("migrate")[0] == 0
    code, output = invoke(
        "orgs", "create", "--name", "Acme", "--owner-email", "o@acme.io", "--json"
    )
    assert code == 0, output
    org = json.loads(output)
    archive = tmp_path / "backups" / "genway.tar.gz"
    made = asyncio.run(_fill_and_back_up(org["api_key"], org["organization_id"], archive))
    assert made["files"] > 3
    assert archive.stat().st_mode & 0o777 == 0o600  # it holds the secret key
    code, output = invoke("backup", str(archive))
    assert code == 1 and "exists" in output  # never overwritten by accident

    monkeypatch.setenv("GENWAY_DATA_DIR", str(tmp_path / "restored"))
    code, output = invoke("restore", str(archive), "--json")
    assert code == 0, output
    restored = tmp_path / "restored"
    assert (restored / "genway.db").stat().st_mode & 0o777 == 0o600
    assert (restored / "secret_key").read_text() == (sqlite_only / "secret_key").read_text()

    items, content, commits = asyncio.run(_read_back(org["api_key"], org["organization_id"]))
    assert [p["name"] for p in items] == ["kept"]
    assert items[0]["secret_names"] == ["TOKEN"]
    assert content == "print('hi')\n" and commits == 1  # the git repository came back

    code, output = invoke("restore", str(archive))
    assert code == 1 and "already holds data" in output
    code, output = invoke("restore", str(archive), "--force")
    assert code == 0, output


def test_unsafe_or_foreign_archives_and_postgres_are_refused(
    sqlite_only: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    evil = tmp_path / "evil.tar.gz"
    with tarfile.open(evil, "w:gz") as archive:
        manifest = json.dumps({"format": 1}).encode()
        info = tarfile.TarInfo("manifest.json")
        info.size = len(manifest)
        archive.addfile(info, io.BytesIO(manifest))
        payload = b"owned"
        escape = tarfile.TarInfo("repos/../../escaped.txt")
        escape.size = len(payload)
        archive.addfile(escape, io.BytesIO(payload))
    code, output = invoke("restore", str(evil))
    assert code == 1 and "unsafe" in output.lower()
    assert not (tmp_path / "escaped.txt").exists()

    foreign = tmp_path / "foreign.tar.gz"
    with tarfile.open(foreign, "w:gz") as archive:
        archive.add(evil, arcname="something.tar.gz")
    code, output = invoke("restore", str(foreign))
    assert code == 1 and "manifest" in output

    monkeypatch.setenv("GENWAY_DATABASE_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/x")
    code, output = invoke("backup", str(tmp_path / "pg.tar.gz"))
    assert code == 1 and "pg_dump" in output

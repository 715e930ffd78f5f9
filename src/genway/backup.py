"""`genway backup PATH` and `genway restore PATH`: an embedded (SQLite) deployment in one archive.

The archive (`.tar.gz`, mode 0600: it holds the secret key) carries an online copy of the
database made with SQLite's backup API (consistent while Genway runs and writes), the secret key
(without it the stored secrets cannot be decrypted), and the files the database points at:
project repositories, uploads and outputs (`blobs/`), job artifacts. Caches and scratch space
(worktrees, GitHub mirrors and snapshots) are left out; they are rebuilt on demand.

A restore puts all of it into the configured data directory, refusing to overwrite a database
that holds data unless told to (`--force`). Stop Genway first; `genway serve` then migrates an
older archive's schema forward. PostgreSQL deployments use `pg_dump` instead.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import sqlite3
import tarfile
import tempfile
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import unquote

from genway import __version__
from genway.config import SECRET_KEY_FILE, Settings
from genway.errors import Conflict, InvalidInput

DATABASE_NAME = "genway.db"
MANIFEST = "manifest.json"
FORMAT = 1
# Data directory entries the database refers to; everything else there is rebuilt on demand.
DATA_ENTRIES = (SECRET_KEY_FILE, "repos", "blobs", "artifacts")


@dataclass(frozen=True)
class Report:
    path: Path
    files: int
    bytes: int
    schema_revision: str | None


def sqlite_file(settings: Settings) -> Path:
    """The SQLite database file. Raises InvalidInput for any other database."""
    url = settings.resolved_database_url
    if not url.startswith("sqlite"):
        raise InvalidInput(
            "genway backup and restore are for SQLite deployments; back PostgreSQL up with "
            "pg_dump (and the data directory's files with your file backups)"
        )
    _scheme, _, rest = url.partition(":///")
    path = unquote(rest.split("?", 1)[0])
    if not path or path == ":memory:":
        raise InvalidInput("An in-memory database has nothing to back up")
    return Path(path).resolve()


def _revision(database: Path) -> str | None:
    with contextlib.closing(sqlite3.connect(database)) as connection:
        try:
            row = connection.execute("SELECT version_num FROM alembic_version").fetchone()
        except sqlite3.Error:
            return None
    return str(row[0]) if row else None


def _copy_database(source: Path, target: Path) -> None:
    """An online copy: SQLite's backup API reads a consistent snapshot while others write."""
    with (
        contextlib.closing(sqlite3.connect(f"{source.as_uri()}?mode=ro", uri=True)) as src,
        contextlib.closing(sqlite3.connect(target)) as dst,
    ):
        src.backup(dst)


def backup(settings: Settings, target: Path, *, force: bool = False) -> Report:
    """Write the archive to `target`. Raises InvalidInput, Conflict (target exists)."""
    database = sqlite_file(settings)
    if not database.is_file():
        raise InvalidInput(f"There is no database at {database} to back up")
    if target.exists() and not force:
        raise Conflict(f"{target} exists; choose another path or pass --force")
    target.parent.mkdir(parents=True, exist_ok=True)
    data_dir = settings.data_dir
    files = 0
    with tempfile.TemporaryDirectory(dir=target.parent, prefix=".genway-backup-") as scratch:
        copy = Path(scratch) / DATABASE_NAME
        _copy_database(database, copy)
        revision = _revision(copy)
        entries = [e for e in DATA_ENTRIES if (data_dir / e).exists()]
        manifest = {
            "format": FORMAT,
            "genway_version": __version__,
            "schema_revision": revision,
            "created_at": datetime.now(UTC).isoformat(),
            "entries": entries,
        }
        (Path(scratch) / MANIFEST).write_text(json.dumps(manifest, indent=2))
        partial = Path(scratch) / "archive.tar.gz"
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "wb") as raw, tarfile.open(fileobj=raw, mode="w:gz") as archive:
            archive.add(Path(scratch) / MANIFEST, arcname=MANIFEST)
            archive.add(copy, arcname=DATABASE_NAME)
            files += 2
            for entry in entries:
                for path in _walk(data_dir / entry):
                    archive.add(path, arcname=str(path.relative_to(data_dir)), recursive=False)
                    files += 1
        os.replace(partial, target)
    return Report(target, files, target.stat().st_size, revision)


def _walk(root: Path) -> list[Path]:
    """`root` and what is under it, without following symbolic links."""
    if root.is_symlink() or not root.is_dir():
        return [root]
    found = [root]
    for directory, dirs, names in os.walk(root, followlinks=False):
        dirs.sort()
        here = Path(directory)
        found += [here / d for d in dirs]
        found += [here / n for n in sorted(names)]
    return found


def _holds_data(database: Path) -> bool:
    if not database.is_file() or database.stat().st_size == 0:
        return False
    with contextlib.closing(sqlite3.connect(database)) as connection:
        try:
            row = connection.execute("SELECT count(*) FROM organizations").fetchone()
        except sqlite3.Error:
            return False
    return bool(row and row[0])


def _read_manifest(archive: tarfile.TarFile) -> dict[str, object]:
    try:
        member = archive.getmember(MANIFEST)
        handle = archive.extractfile(member)
        assert handle is not None
        manifest: dict[str, object] = json.loads(handle.read())
    except (KeyError, AssertionError, ValueError) as exc:
        raise InvalidInput("Not a Genway backup: it has no readable manifest.json") from exc
    if manifest.get("format") != FORMAT:
        raise InvalidInput(f"Unknown backup format {manifest.get('format')!r}")
    return manifest


def restore(settings: Settings, source: Path, *, force: bool = False) -> Report:
    """Put the archive's database and files in place. Raises InvalidInput, Conflict."""
    database = sqlite_file(settings)
    if not source.is_file():
        raise InvalidInput(f"There is no backup at {source}")
    if _holds_data(database) and not force:
        raise Conflict(
            f"{database} already holds data; restore into an empty data directory, or pass "
            "--force to replace it"
        )
    data_dir = settings.data_dir
    data_dir.mkdir(parents=True, exist_ok=True)
    files = 0
    with (
        tarfile.open(source, mode="r:gz") as archive,
        tempfile.TemporaryDirectory(dir=data_dir, prefix=".genway-restore-") as scratch,
    ):
        manifest = _read_manifest(archive)
        allowed = {DATABASE_NAME, MANIFEST, *DATA_ENTRIES}
        for member in archive.getmembers():
            top = member.name.split("/", 1)[0]
            if top not in allowed or not (member.isfile() or member.isdir()):
                raise InvalidInput(f"Unexpected entry in the backup: {member.name!r}")
        try:
            archive.extractall(scratch, filter="data")  # no absolute paths, no escapes
        except tarfile.FilterError as exc:
            raise InvalidInput(f"Refused an unsafe entry in the backup: {exc}") from exc
        staged = Path(scratch)
        for entry in DATA_ENTRIES:
            if (staged / entry).exists():
                _replace(staged / entry, data_dir / entry)
                files += sum(1 for _ in _walk(data_dir / entry))
        for suffix in ("-wal", "-shm", "-journal"):
            Path(f"{database}{suffix}").unlink(missing_ok=True)
        database.parent.mkdir(parents=True, exist_ok=True)
        os.replace(staged / DATABASE_NAME, database)
        files += 1
    os.chmod(database, 0o600)
    with contextlib.suppress(FileNotFoundError):
        os.chmod(data_dir / SECRET_KEY_FILE, 0o600)
    revision = manifest.get("schema_revision")
    return Report(source, files, source.stat().st_size, str(revision) if revision else None)


def _replace(staged: Path, target: Path) -> None:
    if target.is_dir() and not target.is_symlink():
        shutil.rmtree(target)
    else:
        target.unlink(missing_ok=True)
    os.replace(staged, target)

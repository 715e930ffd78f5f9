"""Schema migrations: `genway migrate [--revision REV]` goes up or down to REV (default head)."""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection

from genway.db import create_engine

MIGRATIONS_DIR = Path(__file__).parent / "migrations"


class UnknownRevision(Exception):
    pass


def alembic_config(url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.set_main_option("sqlalchemy.url", url)
    return config


def _migrate_on(connection: Connection, config: Config, revision: str) -> str | None:
    config.attributes["connection"] = connection
    script = ScriptDirectory.from_config(config)
    current = MigrationContext.configure(connection).get_current_revision()
    if revision in ("head", "heads"):
        target = script.get_current_head()
    elif revision == "base":
        target = None
    else:
        try:
            target = script.get_revision(revision).revision
        except Exception as exc:  # alembic raises several kinds for a bad id
            raise UnknownRevision(f"Unknown migration revision '{revision}'") from exc
    if target == current:
        return current
    is_downgrade = current is not None and (
        target is None
        or target in {rev.revision for rev in script.iterate_revisions(current, "base")}
    )
    if is_downgrade:
        command.downgrade(config, target or "base")
    else:
        command.upgrade(config, target or "head")
    return target


async def migrate(url: str, revision: str = "head") -> str | None:
    """Bring the schema at `url` to `revision` (up or down); returns the revision reached.
    Raises UnknownRevision."""
    engine = create_engine(url)
    config = alembic_config(url)
    try:
        async with engine.connect() as connection:
            reached = await connection.run_sync(_migrate_on, config, revision)
            await connection.commit()
    finally:
        await engine.dispose()
    return reached


async def current_revision(url: str) -> str | None:
    engine = create_engine(url)
    try:
        async with engine.connect() as connection:
            return await connection.run_sync(
                lambda c: MigrationContext.configure(c).get_current_revision()
            )
    finally:
        await engine.dispose()

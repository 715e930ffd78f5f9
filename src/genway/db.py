"""Database engine, sessions, the declarative base and `SessionDep`.

Unit of work: a request's session is committed (or rolled back) once, at the boundary
(`SessionDep`), and a worker's by `Database.transaction()`; services never commit. What a
transaction produces for the outside world (job events, wake-ups of idle workers) is collected
on the session (`on_commit`) and handed to the publisher by an after-commit hook: never before
the commit, and dropped with a rollback.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy import DateTime, MetaData, event
from sqlalchemy.engine import Dialect
from sqlalchemy.exc import DBAPIError, DisconnectionError, InterfaceError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase, ORMExecuteState, Session
from sqlalchemy.pool import ConnectionPoolEntry, PoolProxiedConnection
from sqlalchemy.types import TypeDecorator

from genway.kit import fastjson
from genway.kit.sqlite_inline import InlineSQLite

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}

SQLITE_BUSY_TIMEOUT_MS = 30_000
PENDING_EVENTS = "genway_pending_events"
PENDING_WAKEUP = "genway_pending_wakeup"
PENDING_USAGE = "genway_pending_usage"
WROTE = "genway_wrote"  # a statement other than SELECT ran in the current transaction
AUTH_CHANGED = "genway_auth_changed"  # a row authentication depends on changed
PENDING_DELIVERIES = "genway_pending_deliveries"  # webhook deliveries were queued
# (org id, user id, metric, amount): a usage increment no quota depends on.
UsageIncrement = tuple[int, int | None, str, int]


@dataclass
class Committed:
    """What one transaction produced for the outside world, handed over after its commit."""

    events: list[dict[str, Any]]
    wake: bool
    usage: list[UsageIncrement]
    auth_changed: bool = False  # rows authentication depends on changed: caches elsewhere drop
    deliveries: bool = False  # webhook deliveries were queued: wake the sender


# Set by the runtime that owns the Database.
Publisher = Callable[[Committed], None]
# Runs inside a transaction just before it commits (synchronous; it may execute statements).
BeforeCommit = Callable[[Session], None]


def on_commit(
    session: AsyncSession | Session,
    events: Sequence[dict[str, Any]] = (),
    *,
    wake: bool = False,
    usage: Sequence[UsageIncrement] = (),
    deliveries: bool = False,
) -> None:
    """Once the session's transaction commits: publish `events`, wake idle workers, count
    `usage` (buffered), wake the webhook sender (`deliveries` were queued). A rollback drops
    them."""
    info = session.info
    if deliveries:
        info[PENDING_DELIVERIES] = True
    if events:
        info.setdefault(PENDING_EVENTS, []).extend(events)
    if wake:
        info[PENDING_WAKEUP] = True
    if usage:
        info.setdefault(PENDING_USAGE, []).extend(usage)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp that is always timezone-aware UTC, on SQLite too."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            value = value.replace(tzinfo=UTC)
        value = value.astimezone(UTC)
        if dialect.name == "sqlite":
            return value.replace(tzinfo=None)
        return value

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value.astimezone(UTC)


def _configure_sqlite(dbapi_connection: Any, _record: ConnectionPoolEntry) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.close()


def _discard_closed_connection(
    _dbapi_connection: Any, record: ConnectionPoolEntry, _proxy: PoolProxiedConnection
) -> None:
    # After a database restart the pool holds connections the server closed. asyncpg notices a
    # closed socket on its own, so the pool replaces them at checkout without the round trip of
    # `pool_pre_ping` on every request.
    driver = record.driver_connection
    if driver is not None and driver.is_closed():
        raise DisconnectionError("the database closed this pooled connection")


# SQLSTATEs of a server that is going away or not there yet: connection exceptions (class 08),
# shutting down (57P01, 57P02) and starting up (57P03).
UNAVAILABLE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def is_database_unavailable(exc: BaseException) -> bool:
    """Whether `exc` says the database cannot be reached right now (down, restarting, out of
    connections), as opposed to a statement it refused."""
    if isinstance(exc, (OperationalError, InterfaceError, PoolTimeout, ConnectionError)):
        return True
    if not isinstance(exc, DBAPIError):
        return False
    if exc.connection_invalidated:
        return True
    sqlstate = getattr(exc.orig, "sqlstate", None)
    if isinstance(sqlstate, str) and sqlstate.startswith(UNAVAILABLE_SQLSTATES):
        return True
    return isinstance(exc.orig, ConnectionError)


def create_engine(url: str) -> AsyncEngine:
    """An async engine. SQLite runs on the event loop (`kit/sqlite_inline.py`), with WAL,
    foreign keys and a busy timeout on every connection."""
    if url.startswith("sqlite"):
        engine = create_async_engine(
            url,
            module=InlineSQLite(SQLITE_BUSY_TIMEOUT_MS / 1000),
            json_serializer=fastjson.dumps_text,
            json_deserializer=fastjson.loads,
            connect_args={"timeout": SQLITE_BUSY_TIMEOUT_MS / 1000},
            pool_size=8,
        )
        event.listen(engine.sync_engine, "connect", _configure_sqlite)
        return engine
    # 10 + 5 per process: with several API and worker processes on one server, a larger pool
    # would exhaust PostgreSQL's default 100 connections.
    engine = create_async_engine(
        url,
        pool_size=10,
        max_overflow=5,
        pool_recycle=1800,
        json_serializer=fastjson.dumps_text,
        json_deserializer=fastjson.loads,
    )
    event.listen(engine.sync_engine, "checkout", _discard_closed_connection)
    return engine


# Tables whose rows per-process caches hold: authentication's, and the webhook endpoints the
# delivery outbox looks up on every commit with events (`webhooks/outbox.py`).
AUTH_TABLES = frozenset(
    {
        "api_keys",
        "users",
        "memberships",
        "organizations",
        "login_sessions",
        "refresh_tokens",
        "webhook_endpoints",
    }
)


def _touches_auth(session: Session) -> bool:
    changed = (*session.new, *session.dirty, *session.deleted)
    return any(getattr(obj, "__tablename__", None) in AUTH_TABLES for obj in changed)


class Database:
    """The engine and its session factory, owned by the app or a worker process.

    `auth_generation` counts commits that changed rows authentication depends on, this
    process's own and, through the broadcaster, other processes'; caches of principals compare
    against it.
    """

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = create_engine(url)
        self.auth_generation = 0
        self.publisher: Publisher | None = None
        self.before_commit: list[BeforeCommit] = []

        class TrackedSession(Session):
            pass

        event.listen(TrackedSession, "before_commit", self._before_commit)
        event.listen(TrackedSession, "after_flush", self._note_auth_change)
        event.listen(TrackedSession, "after_commit", self._publish_pending)
        event.listen(TrackedSession, "after_rollback", self._drop_pending)
        event.listen(TrackedSession, "do_orm_execute", self._note_statement)
        self.sessions = async_sessionmaker(
            self.engine, expire_on_commit=False, sync_session_class=TrackedSession
        )

    def _before_commit(self, session: Session) -> None:
        for hook in self.before_commit:
            hook(session)

    @staticmethod
    def _note_auth_change(session: Session, _context: object) -> None:
        session.info[WROTE] = True
        if _touches_auth(session):
            session.info[AUTH_CHANGED] = True

    @staticmethod
    def _note_statement(state: ORMExecuteState) -> None:
        if not state.is_select:
            state.session.info[WROTE] = True
        # ORM-enabled UPDATE/DELETE by entity; Core statements on a bare Table (such as the
        # last-used timestamp of a key) deliberately do not count.
        if (state.is_update or state.is_delete) and state.bind_mapper is not None:
            if state.bind_mapper.local_table.name in AUTH_TABLES:  # type: ignore[attr-defined]
                state.session.info[AUTH_CHANGED] = True

    def auth_changed_elsewhere(self) -> None:
        """Another process committed an auth change (or its news may have been lost)."""
        self.auth_generation += 1

    def _publish_pending(self, session: Session) -> None:
        info = session.info
        info.pop(WROTE, None)
        auth_changed = bool(info.pop(AUTH_CHANGED, False))
        if auth_changed:
            self.auth_generation += 1
        events: list[dict[str, Any]] = info.pop(PENDING_EVENTS, [])
        wake = bool(info.pop(PENDING_WAKEUP, False))
        usage: list[UsageIncrement] = info.pop(PENDING_USAGE, [])
        deliveries = bool(info.pop(PENDING_DELIVERIES, False))
        if (events or wake or usage or auth_changed or deliveries) and self.publisher is not None:
            self.publisher(Committed(events, wake, usage, auth_changed, deliveries))

    @staticmethod
    def _drop_pending(session: Session) -> None:
        for key in (
            PENDING_EVENTS,
            PENDING_WAKEUP,
            PENDING_USAGE,
            WROTE,
            AUTH_CHANGED,
            PENDING_DELIVERIES,
        ):
            session.info.pop(key, None)

    @contextlib.asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncSession]:
        """A session committed when the block ends, rolled back if it raises (unless the
        error `keeps_writes`). A block that only read ends without a COMMIT round trip
        (closing the session ends its transaction)."""
        async with self.sessions() as session:
            try:
                yield session
            except BaseException as exc:
                if getattr(exc, "keeps_writes", False):
                    await session.commit()
                else:
                    await session.rollback()
                raise
            if session.info.pop(WROTE, False) or session.new or session.dirty or session.deleted:
                await session.commit()

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def dispose(self) -> None:
        await self.engine.dispose()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed when the route returns, before the response is
    sent (so a 201 means it is durable), rolled back when it raises."""
    database: Database = request.app.state.db
    async with database.transaction() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]

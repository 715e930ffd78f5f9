"""SQLite for asyncio, run on the event loop instead of a thread per connection.

aiosqlite (SQLAlchemy's asyncio SQLite driver) runs every call on a thread of its own
connection: a statement costs four or five thread hops (cursor, execute, fetch, close), about
0.1 ms of CPU each on a small virtual machine, while SQLite answers the statement itself in
microseconds. This driver gives SQLAlchemy's aiosqlite dialect (through `create_engine`'s
`module=`) connections that call the standard `sqlite3` module directly.

What must never run on the loop is a wait for SQLite's write lock: two write transactions of one
process on two connections would wait for each other inside the loop that has to finish the
first. So a process's writers take turns, first come first served, on an asyncio lock per
database file, taken before a transaction's first write and given back when it ends. Readers
never wait (WAL). SQLite's busy timeout then only covers other processes on the same file (the
CLI, a second worker), whose write transactions are short.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import sqlite3
import weakref
from collections import deque
from collections.abc import Iterator, Sequence
from typing import Any, cast

from sqlalchemy.dialects.sqlite.aiosqlite import AsyncAdapt_aiosqlite_dbapi
from sqlalchemy.engine.interfaces import AdaptedConnection
from sqlalchemy.util.concurrency import await_

# Statements that never take the write lock; anything else waits for the process's turn.
READ_ONLY = ("SELECT", "PRAGMA", "EXPLAIN")

_turns: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[str, asyncio.Lock]] = (
    weakref.WeakKeyDictionary()
)


def _turn_for(path: str) -> asyncio.Lock:
    """The lock writers of this process take turns on for `path` (per event loop)."""
    locks = _turns.setdefault(asyncio.get_running_loop(), {})
    return locks.setdefault(path, asyncio.Lock())


def may_write(sql: str) -> bool:
    return not sql.lstrip()[:8].upper().startswith(READ_ONLY)


class WriteTurn:
    """One connection's claim on its process's write turn."""

    def __init__(self, path: str, timeout_s: float) -> None:
        self.path, self.timeout_s = path, timeout_s
        self._lock: asyncio.Lock | None = None

    @property
    def held(self) -> bool:
        return self._lock is not None

    async def take(self) -> None:
        """Wait (without blocking the loop) until no other connection of this process is in a
        write transaction. Raises sqlite3.OperationalError after the busy timeout, as SQLite
        itself would."""
        lock = _turn_for(self.path)
        try:
            async with asyncio.timeout(self.timeout_s):
                await lock.acquire()
        except TimeoutError:
            raise sqlite3.OperationalError("database is locked") from None
        self._lock = lock

    def give_back(self) -> None:
        if self._lock is not None:
            lock, self._lock = self._lock, None
            lock.release()


class InlineCursor:
    """A DBAPI cursor over `sqlite3` that takes the write turn before a statement that may
    write, and reads a statement's rows at once (as SQLAlchemy's asyncio cursors do), so that
    the statement is complete when `execute` returns."""

    server_side = False
    arraysize = 1

    def __init__(self, connection: InlineConnection) -> None:
        self._connection = connection
        self._cursor = connection._sqlite.cursor()
        self._rows: deque[Any] = deque()
        self.description: Any = None

    @property
    def rowcount(self) -> int:
        return int(self._cursor.rowcount)

    @property
    def lastrowid(self) -> int | None:
        row_id: int | None = self._cursor.lastrowid
        return row_id

    # SQLAlchemy runs a DBAPI call in a greenlet and awaits what it hands over (`await_`); the
    # coroutines below run on the loop without waiting, except for the write turn.
    def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> Any:
        return await_(self._execute(operation, parameters or ()))

    def executemany(self, operation: str, seq_of_parameters: Sequence[Any]) -> Any:
        return await_(self._execute(operation, seq_of_parameters, many=True))

    async def _execute(self, operation: str, parameters: Sequence[Any], many: bool = False) -> Any:
        await self._connection.before(operation)
        try:
            if many:
                self._cursor.executemany(operation, parameters)
            else:
                self._cursor.execute(operation, parameters)
            self.description = self._cursor.description
            self._rows = deque(self._cursor.fetchall()) if self.description else deque()
        finally:
            self._connection.after()
        return self

    def fetchone(self) -> Any:
        return self._rows.popleft() if self._rows else None

    def fetchmany(self, size: int | None = None) -> list[Any]:
        rows = self._rows
        return [rows.popleft() for _ in range(min(size or self.arraysize, len(rows)))]

    def fetchall(self) -> list[Any]:
        rows = list(self._rows)
        self._rows.clear()
        return rows

    def __iter__(self) -> Iterator[Any]:
        while self._rows:
            yield self._rows.popleft()

    async def _async_soft_close(self) -> None:
        """Called by SQLAlchemy's asyncio results; the rows are already read."""

    def close(self) -> None:
        self._rows.clear()
        self._cursor.close()


class InlineConnection(AdaptedConnection):
    """What SQLAlchemy's aiosqlite dialect expects of a connection, on a `sqlite3` one."""

    __slots__ = ("_sqlite", "_turn", "dbapi")

    def __init__(self, dbapi: InlineSQLite, connection: sqlite3.Connection, turn: WriteTurn):
        self.dbapi = dbapi
        self._connection = cast(Any, connection)  # what `driver_connection` answers
        self._sqlite = connection
        self._turn = turn

    async def before(self, sql: str) -> None:
        if not self._turn.held and may_write(sql):
            await self._turn.take()

    def after(self) -> None:
        if self._turn.held and not self._sqlite.in_transaction:
            self._turn.give_back()

    def cursor(self, server_side: bool = False) -> InlineCursor:
        return InlineCursor(self)

    def execute(self, operation: str, parameters: Sequence[Any] | None = None) -> InlineCursor:
        cursor = self.cursor()
        cursor.execute(operation, parameters)
        return cursor

    @property
    def isolation_level(self) -> str | None:
        return self._sqlite.isolation_level

    @isolation_level.setter
    def isolation_level(self, value: str | None) -> None:
        self._sqlite.isolation_level = value  # type: ignore[assignment]

    def create_function(self, *args: Any, **kwargs: Any) -> None:
        self._sqlite.create_function(*args, **kwargs)

    def commit(self) -> None:
        try:
            self._sqlite.commit()
        finally:
            self.after()

    def rollback(self) -> None:
        try:
            self._sqlite.rollback()
        finally:
            self.after()

    def close(self) -> None:
        try:
            self._sqlite.close()
        finally:
            # Closed by the garbage collector after its loop ended: nobody waits any more.
            with contextlib.suppress(RuntimeError):
                self._turn.give_back()


class InlineSQLite(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module handed to SQLAlchemy's aiosqlite dialect."""

    def __init__(self, busy_timeout_s: float) -> None:
        super().__init__(sqlite3, sqlite3)
        self.busy_timeout_s = busy_timeout_s

    def connect(self, *args: Any, **kwargs: Any) -> InlineConnection:  # type: ignore[override]
        kwargs.pop("async_creator_fn", None)
        database = str(args[0] if args else kwargs.get("database", ""))
        key = database if database.startswith((":", "file:")) else os.path.realpath(database)
        kwargs["check_same_thread"] = False  # made and used on the loop's thread; closed by GC
        connection = sqlite3.connect(*args, **kwargs)
        return InlineConnection(self, connection, WriteTurn(key, self.busy_timeout_s))

"""Waking idle workers when a job is queued: in process, across machines with PostgreSQL's
LISTEN/NOTIFY (the notification is sent by the transaction that queues the job, at commit), and
across processes on one SQLite file by watching its `PRAGMA data_version` (it changes when
another connection commits; reading it costs microseconds and takes no lock).

The LISTEN connection is re-established, with backoff, whenever it ends (the database restarted);
meanwhile idle workers poll, and once it is back they look at the queue at once, since
notifications sent while nobody listened are lost."""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
from typing import Any

import asyncpg
import structlog
from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import on_commit

log = structlog.get_logger("genway.wakeup")

CHANNEL = "genway_jobs_queued"
SQLITE_WATCH_S = 0.005
LISTEN_RETRY_S = 0.2  # the first retry after losing LISTEN; doubled up to the maximum
LISTEN_RETRY_MAX_S = 5.0


async def notify_queued(session: AsyncSession) -> None:
    """Inside the queueing transaction: wake idle workers once it commits, in this process and
    (PostgreSQL's NOTIFY, delivered at commit) on every other."""
    on_commit(session, wake=True)
    if session.bind.dialect.name == "postgresql":  # type: ignore[union-attr]
        await session.execute(text("SELECT pg_notify(:channel, '')"), {"channel": CHANNEL})


class Wakeup:
    """An idle worker waits here; `notify()` (same process), a NOTIFY (PostgreSQL, any process)
    or a commit to the SQLite file (any process on the machine) wakes it."""

    def __init__(self, database_url: str | None = None, channel: str = CHANNEL) -> None:
        self._event = asyncio.Event()
        self._url = database_url
        self._channel = channel
        self._connection: Any = None
        self._listen_lost = asyncio.Event()
        self._listen_keeper: asyncio.Task[None] | None = None
        self._sqlite_watch: asyncio.Task[None] | None = None

    def notify(self) -> None:
        self._event.set()

    async def wait(self, timeout_s: float) -> None:
        if self._sqlite_watch is None and self._url and self._url.startswith("sqlite"):
            # Started by the first waiter: API processes never wait and never watch.
            self._sqlite_watch = asyncio.create_task(self._watch_sqlite(), name="sqlite-watch")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._event.wait(), timeout_s)
        self._event.clear()

    async def _watch_sqlite(self) -> None:
        path = make_url(self._url or "").database
        if not path or path == ":memory:":
            return
        try:
            connection = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        except sqlite3.Error as exc:
            log.error("sqlite_watch_failed", error=str(exc))
            return
        try:
            last = connection.execute("PRAGMA data_version").fetchone()[0]
            while True:
                await asyncio.sleep(SQLITE_WATCH_S)
                version = connection.execute("PRAGMA data_version").fetchone()[0]
                if version != last:
                    last = version
                    self._event.set()
        finally:
            connection.close()

    async def start(self) -> None:
        if not self._url or not self._url.startswith("postgresql"):
            return
        await self._listen()
        self._listen_keeper = asyncio.create_task(self._keep_listening(), name="listen-keeper")

    async def _listen(self) -> bool:
        """Open a connection and LISTEN on it; False (and polling meanwhile) if that failed."""
        url = make_url(self._url or "").set(drivername="postgresql")
        self._listen_lost.clear()
        connection = None
        try:
            connection = await asyncpg.connect(url.render_as_string(hide_password=False))
            connection.add_termination_listener(self._on_listen_lost)
            await connection.add_listener(self._channel, self._on_notify)
        except Exception as exc:  # fall back to polling; never stop the worker for this
            log.error("listen_failed", error=f"{type(exc).__name__}: {exc}")
            if connection is not None:
                connection.terminate()
            self._listen_lost.set()
            return False
        self._connection = connection
        return True

    def _on_listen_lost(self, *_args: object) -> None:
        self._listen_lost.set()

    async def _keep_listening(self) -> None:
        delay = LISTEN_RETRY_S
        while True:
            await self._listen_lost.wait()
            if self._connection is not None:
                log.warning("listen_lost")
                self._connection.terminate()
                self._connection = None
            await asyncio.sleep(delay)
            if await self._listen():
                log.info("listen_restored")
                delay = LISTEN_RETRY_S
                self._event.set()  # queued while nobody listened: look at the queue now
            else:
                delay = min(delay * 2, LISTEN_RETRY_MAX_S)

    def _on_notify(self, *_args: object) -> None:
        self._event.set()

    async def stop(self) -> None:
        if self._sqlite_watch is not None:
            self._sqlite_watch.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sqlite_watch
            self._sqlite_watch = None
        if self._listen_keeper is not None:
            self._listen_keeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._listen_keeper
            self._listen_keeper = None
        if self._connection is not None:
            with contextlib.suppress(Exception):
                await self._connection.close()
            self._connection = None

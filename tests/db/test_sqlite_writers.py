"""SQLite runs on the event loop (kit/sqlite_inline.py): a process's write transactions take
turns without ever blocking the loop, and reads never wait for a writer."""

from __future__ import annotations

import asyncio
from pathlib import Path

from sqlalchemy import text

from genway.db import Database


async def test_a_second_writer_waits_its_turn_while_the_loop_and_readers_run(tmp_path: Path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER)"))
        first_wrote, second_done = asyncio.Event(), asyncio.Event()
        release = asyncio.Event()

        async def first() -> None:
            async with database.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (1)"))
                first_wrote.set()
                await release.wait()  # holds SQLite's write lock across an await

        async def second() -> None:
            await first_wrote.wait()
            async with database.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (2)"))
            second_done.set()

        tasks = [asyncio.create_task(first()), asyncio.create_task(second())]
        await first_wrote.wait()
        ticks = 0
        for _ in range(20):  # the loop keeps running while the second writer waits
            await asyncio.sleep(0.005)
            ticks += 1
        assert ticks == 20 and not second_done.is_set()
        async with database.sessions() as reader:  # a reader does not wait for the writer
            assert await reader.scalar(text("SELECT count(*) FROM t")) == 0
        release.set()
        await asyncio.wait_for(asyncio.gather(*tasks), timeout=10)
        async with database.sessions() as reader:
            rows = (await reader.execute(text("SELECT n FROM t ORDER BY n"))).scalars().all()
        assert rows == [1, 2]
    finally:
        await database.dispose()


async def test_a_failed_write_gives_the_turn_back(tmp_path: Path):
    database = Database(f"sqlite+aiosqlite:///{tmp_path / 'w.db'}")
    try:
        async with database.transaction() as session:
            await session.execute(text("CREATE TABLE t (n INTEGER PRIMARY KEY)"))
            await session.execute(text("INSERT INTO t VALUES (1)"))
        for _ in range(2):
            try:
                async with database.transaction() as session:
                    await session.execute(text("INSERT INTO t VALUES (1)"))
            except Exception as exc:
                assert "UNIQUE" in str(exc)
        async with asyncio.timeout(5):  # would wait for the busy timeout if the turn leaked
            async with database.transaction() as session:
                await session.execute(text("INSERT INTO t VALUES (2)"))
    finally:
        await database.dispose()

"""`genway serve` keeps an idle connection open longer than clients keep theirs (httpx: 5 s),
so a client reusing a pooled connection never writes into one the server is closing (the
race surfaces as a ReadError on a POST that cannot be retried)."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.jobs.processes import Processes

REQUEST = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


async def _status(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> bytes:
    writer.write(REQUEST)
    await writer.drain()
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), timeout=10)
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    await reader.readexactly(length)
    return head.split(b"\r\n", 1)[0]


async def test_an_idle_connection_outlives_the_clients_own_expiry(
    database_url: str, tmp_path: Path
) -> None:
    with Processes(tmp_path / "processes", database_url) as processes:
        api = processes.api("api")
        await api.wait_ready()
        reader, writer = await asyncio.open_connection("127.0.0.1", api.port)
        try:
            assert await _status(reader, writer) == b"HTTP/1.1 200 OK"
            await asyncio.sleep(6)  # longer than httpx's pool keeps a connection (5 s)
            assert await _status(reader, writer) == b"HTTP/1.1 200 OK"
        finally:
            writer.close()

"""The command's output: kept up to a cap, streamed as it arrives, the excess drained and dropped.

Draining matters: a command whose output is cut must not block on a full pipe, it must run on
and finish normally.
"""

from __future__ import annotations

import asyncio
import codecs
import inspect
from collections.abc import Awaitable, Callable

OutputCallback = Callable[[str], Awaitable[None] | None]
_CHUNK_BYTES = 64 * 1024


class OutputSink:
    """Collects at most `limit` bytes of output and passes their text to `on_output`."""

    def __init__(self, limit: int, on_output: OutputCallback | None) -> None:
        self._remaining = max(0, limit)
        self._on_output = on_output
        self._decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        self._parts: list[str] = []
        self.truncated = False

    @property
    def text(self) -> str:
        return "".join(self._parts)

    async def drain(self, stream: asyncio.StreamReader) -> None:
        """Read `stream` to its end; raises whatever `on_output` raises."""
        while chunk := await stream.read(_CHUNK_BYTES):
            await self._emit(self._accept(chunk))
        if not self.truncated:
            await self._emit(self._decoder.decode(b"", final=True))

    def _accept(self, chunk: bytes) -> str:
        if self.truncated:
            return ""
        if len(chunk) > self._remaining:
            chunk = chunk[: self._remaining]
            self.truncated = True
        self._remaining -= len(chunk)
        # A multi-byte character cut by the cap stays in the decoder and is dropped.
        return self._decoder.decode(chunk)

    async def _emit(self, text: str) -> None:
        if not text:
            return
        self._parts.append(text)
        if self._on_output is not None:
            result = self._on_output(text)
            if inspect.isawaitable(result):
                await result

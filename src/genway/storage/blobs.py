"""Content-addressed files on local disk: `blobs/ab/cdef...`, named by their SHA-256.

Writes go to a temporary file in the same folder and are renamed into place, so a reader never
sees half a file and two writers of the same content do not conflict. In distributed mode every
API and worker process must see the same data directory (for example a shared volume).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import re
import tempfile
import time
from pathlib import Path

_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class BlobStore:
    def __init__(self, root: Path) -> None:
        self.root = root

    def path(self, sha256: str) -> Path:
        """Where the blob lives. Raises ValueError for anything but a lower-case SHA-256."""
        if not _SHA256.match(sha256):
            raise ValueError(f"not a SHA-256: {sha256!r}")
        return self.root / sha256[:2] / sha256[2:]

    async def put(self, data: bytes) -> str:
        """Store `data` (once per content); its SHA-256."""
        sha256 = hashlib.sha256(data).hexdigest()
        await asyncio.to_thread(self._write, sha256, data)
        return sha256

    def _write(self, sha256: str, data: bytes) -> None:
        target = self.path(sha256)
        if target.exists():
            # Fresh mtime: the cleanup loop leaves recently (re)used blobs alone.
            with contextlib.suppress(FileNotFoundError):
                os.utime(target)
                return
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=target.parent, prefix=".tmp-")
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, target)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                os.unlink(tmp)
            raise

    def exists(self, sha256: str) -> bool:
        return self.path(sha256).is_file()

    async def read(self, sha256: str) -> bytes:
        """The blob's bytes. Raises FileNotFoundError."""
        return await asyncio.to_thread(self.path(sha256).read_bytes)

    def delete(self, sha256: str, *, unused_for_s: float = 0.0) -> bool:
        """Remove the blob unless it was written or reused in the last `unused_for_s` seconds."""
        path = self.path(sha256)
        try:
            if time.time() - path.stat().st_mtime < unused_for_s:
                return False
            path.unlink()
        except FileNotFoundError:
            return False
        return True

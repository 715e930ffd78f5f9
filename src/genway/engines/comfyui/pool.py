"""The ComfyUI backends Genway load-balances over, and the health check that keeps them current.

`run_once` asks every backend that is due for `/system_stats` and `/queue`. A healthy backend is
checked on every run; one that failed is retried after an exponential backoff, so a dead server
costs one connection attempt per backoff period instead of one per run. `pick` chooses the
healthy backend with the shortest queue.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Collection, Sequence
from dataclasses import asdict, dataclass
from enum import StrEnum
from typing import Any

import structlog

from genway.engines.comfyui.client import ComfyUIClient
from genway.engines.comfyui.errors import ComfyUIError
from genway.kit.redact import redact_urls

log = structlog.get_logger("genway.engines.comfyui")

ClientFactory = Callable[[str], ComfyUIClient]


def backend_id(url: str) -> str:
    """A backend's stable name for admins: a digest of its URL (which may carry credentials),
    the same in every process configured with that URL."""
    return hashlib.sha256(url.rstrip("/").encode()).hexdigest()[:12]


class BackendState(StrEnum):
    UNKNOWN = "unknown"
    HEALTHY = "healthy"
    UNHEALTHY = "unhealthy"


@dataclass
class Backend:
    """What the pool knows of one ComfyUI server."""

    url: str
    client: ComfyUIClient
    state: BackendState = BackendState.UNKNOWN
    queue_length: int = 0
    last_error: str | None = None
    failures: int = 0
    next_check_at: float = 0.0
    checked_at: float | None = None
    version: str | None = None


@dataclass(frozen=True)
class BackendSnapshot:
    """A backend as `/health` and `genway backends` show it. Times are Unix seconds."""

    url: str
    state: str
    queue_length: int
    last_error: str | None
    consecutive_failures: int
    checked_at: float | None
    retry_in_s: float | None
    version: str | None

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class BackendPool:
    """The configured backends with their last known health; `clock` is monotonic seconds."""

    def __init__(
        self,
        urls: Sequence[str],
        *,
        client_factory: ClientFactory | None = None,
        check_timeout: float = 5.0,
        base_backoff: float = 1.0,
        max_backoff: float = 60.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        factory = client_factory or ComfyUIClient
        self.backends = {url.rstrip("/"): Backend(url.rstrip("/"), factory(url)) for url in urls}
        self.check_timeout = check_timeout
        self.base_backoff = base_backoff
        self.max_backoff = max_backoff
        self.clock = clock

    def client(self, url: str) -> ComfyUIClient:
        """The client of one backend. Raises KeyError for a URL outside the pool."""
        return self.backends[url.rstrip("/")].client

    async def aclose(self) -> None:
        """Close every backend's client."""
        await asyncio.gather(*(backend.client.aclose() for backend in self.backends.values()))

    async def run_once(self) -> None:
        """Check every backend that is due; never raises for a backend's failure."""
        now = self.clock()
        due = [b for b in self.backends.values() if b.next_check_at <= now]
        await asyncio.gather(*(self._check(backend) for backend in due))

    def pick(self, exclude: Collection[str] = ()) -> Backend | None:
        """The healthy backend with the shortest queue (first configured wins ties), or None."""
        candidates = [
            backend
            for backend in self.backends.values()
            if backend.state is BackendState.HEALTHY and backend.url not in exclude
        ]
        return min(candidates, key=lambda backend: backend.queue_length, default=None)

    def note_submitted(self, url: str) -> None:
        """Count a prompt we just queued there, so picks before the next check spread out."""
        self.backends[url.rstrip("/")].queue_length += 1

    def note_finished(self, url: str) -> None:
        """Count one of our prompts there as done, until the next check reads the real queue."""
        backend = self.backends[url.rstrip("/")]
        backend.queue_length = max(0, backend.queue_length - 1)

    def next_check_in(self) -> float:
        """Seconds until the pool is due to check any backend again (0 if one is due now)."""
        now = self.clock()
        return max(0.0, min((b.next_check_at - now for b in self.backends.values()), default=0.0))

    def mark_unhealthy(self, url: str, reason: str) -> None:
        """Take a backend out of `pick` now (the caller saw it fail) until its backoff ends."""
        self._failed(self.backends[url.rstrip("/")], reason)

    def snapshot(self) -> list[BackendSnapshot]:
        """Every backend's state, in configured order."""
        now, wall = self.clock(), time.time()
        return [
            BackendSnapshot(
                url=redact_urls(backend.url),
                state=backend.state.value,
                queue_length=backend.queue_length,
                last_error=redact_urls(backend.last_error) if backend.last_error else None,
                consecutive_failures=backend.failures,
                checked_at=None
                if backend.checked_at is None
                else wall - (now - backend.checked_at),
                retry_in_s=(
                    max(0.0, backend.next_check_at - now)
                    if backend.state is BackendState.UNHEALTHY
                    else None
                ),
                version=backend.version,
            )
            for backend in self.backends.values()
        ]

    async def _check(self, backend: Backend) -> None:
        try:
            async with asyncio.timeout(self.check_timeout):
                stats = await backend.client.system_stats()
                queue = await backend.client.queue()
        except (ComfyUIError, TimeoutError) as exc:
            self._failed(backend, str(exc) or type(exc).__name__)
            return
        if backend.state is not BackendState.HEALTHY:
            log.info("comfyui_backend_healthy", url=backend.url, queue_length=queue.length)
        backend.state = BackendState.HEALTHY
        backend.queue_length = queue.length
        backend.last_error = None
        backend.failures = 0
        backend.checked_at = self.clock()
        backend.next_check_at = backend.checked_at
        backend.version = _version(stats)

    def _failed(self, backend: Backend, reason: str) -> None:
        now = self.clock()
        if backend.state is not BackendState.UNHEALTHY:
            log.warning("comfyui_backend_unhealthy", url=backend.url, error=reason)
        backend.state = BackendState.UNHEALTHY
        backend.failures += 1
        backend.last_error = reason
        backend.checked_at = now
        delay = min(self.max_backoff, self.base_backoff * 2 ** min(backend.failures - 1, 32))
        backend.next_check_at = now + delay


def _version(stats: dict[str, Any]) -> str | None:
    system = stats.get("system")
    version = system.get("comfyui_version") if isinstance(system, dict) else None
    return None if version is None else str(version)


class BackendHealthLoop:
    """Keeps a pool's health current; tests call `run_once` directly."""

    def __init__(self, pool: BackendPool, interval: float = 5.0) -> None:
        self.pool = pool
        self.interval = interval

    async def run_once(self) -> None:
        """One round of health checks."""
        await self.pool.run_once()

    async def run_forever(self) -> None:
        """Check, sleep, repeat, until cancelled."""
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

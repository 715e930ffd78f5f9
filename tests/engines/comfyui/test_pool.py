"""The backend pool: health checks against fake ComfyUI servers, backoff, and picking."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from genway.engines.comfyui.pool import BackendHealthLoop, BackendPool, BackendState
from tests.engines.comfyui.conftest import invert_workflow, make_client, new_client_id
from tests.fakes.comfyui import FakeComfyUI


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


@pytest.fixture
async def fakes(tmp_path: Path) -> AsyncIterator[list[FakeComfyUI]]:
    servers = [FakeComfyUI(tmp_path / name) for name in ("a", "b", "c")]
    await asyncio.gather(*(server.start() for server in servers))
    for server in servers:
        server.pause()
    yield servers
    await asyncio.gather(*(server.stop() for server in servers))


async def queue_prompts(fake: FakeComfyUI, count: int) -> None:
    async with make_client(fake.base_url) as client:
        for _ in range(count):
            await client.submit(invert_workflow(), new_client_id())


async def test_pool_picks_the_shortest_healthy_queue_and_skips_a_dead_backend(
    fakes: list[FakeComfyUI],
):
    a, b, c = fakes
    await queue_prompts(a, 3)
    await queue_prompts(b, 1)
    clock = Clock()
    pool = BackendPool([f.base_url for f in fakes], clock=clock, base_backoff=1.0)
    await c.die()

    await BackendHealthLoop(pool).run_once()

    snapshot = {backend.url: backend for backend in pool.snapshot()}
    assert snapshot[a.base_url].state == "healthy" and snapshot[a.base_url].queue_length == 3
    assert snapshot[b.base_url].queue_length == 1
    assert snapshot[b.base_url].version == "0.3.64"
    dead = snapshot[c.base_url]
    assert dead.state == "unhealthy" and dead.consecutive_failures == 1
    assert dead.last_error and "unavailable" in dead.last_error
    assert dead.retry_in_s == 1.0
    picked = pool.pick()
    assert picked is not None and picked.url == b.base_url

    await c.revive()
    await pool.run_once()  # not due yet: still out of the pool
    assert pool.backends[c.base_url].state is BackendState.UNHEALTHY
    assert pool.pick().url == b.base_url  # type: ignore[union-attr]

    clock.advance(1.0)
    await pool.run_once()

    assert pool.backends[c.base_url].state is BackendState.HEALTHY
    assert pool.backends[c.base_url].last_error is None
    assert pool.pick().url == c.base_url  # type: ignore[union-attr]
    await pool.aclose()


async def test_backoff_doubles_while_a_backend_stays_down(fakes: list[FakeComfyUI]):
    a = fakes[0]
    await a.die()
    clock = Clock()
    pool = BackendPool([a.base_url], clock=clock, base_backoff=1.0, max_backoff=4.0)

    delays = []
    for _ in range(5):
        await pool.run_once()
        [snapshot] = pool.snapshot()
        delays.append(snapshot.retry_in_s)
        clock.advance(snapshot.retry_in_s or 0)

    assert delays == [1.0, 2.0, 4.0, 4.0, 4.0]
    assert pool.pick() is None
    assert pool.snapshot()[0].as_dict()["consecutive_failures"] == 5
    await pool.aclose()


async def test_a_hung_backend_fails_its_check(fakes: list[FakeComfyUI]):
    a, b, _c = fakes
    a.hang()
    pool = BackendPool([a.base_url, b.base_url], check_timeout=0.2)

    await pool.run_once()

    assert pool.backends[a.base_url].state is BackendState.UNHEALTHY
    assert pool.pick().url == b.base_url  # type: ignore[union-attr]
    a.unhang()
    await pool.aclose()


async def test_caller_reports_and_submissions_steer_picks(fakes: list[FakeComfyUI]):
    a, b, _c = fakes
    pool = BackendPool([a.base_url, b.base_url])
    assert pool.pick() is None  # nothing checked yet
    await pool.run_once()
    assert pool.pick().url == a.base_url  # type: ignore[union-attr]

    pool.note_submitted(a.base_url)
    assert pool.pick().url == b.base_url  # type: ignore[union-attr]
    assert pool.pick(exclude={b.base_url}).url == a.base_url  # type: ignore[union-attr]

    pool.mark_unhealthy(b.base_url, "BackendUnavailable during a job")
    assert pool.pick().url == a.base_url  # type: ignore[union-attr]
    assert pool.backends[b.base_url].last_error == "BackendUnavailable during a job"
    assert pool.client(a.base_url + "/").base_url == a.base_url
    await pool.aclose()

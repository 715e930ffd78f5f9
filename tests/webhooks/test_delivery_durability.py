"""Deliveries pending when a worker is killed are all sent once another worker runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI, Request, Response

from genway.config import Settings
from tests.jobs.processes import Processes, count_job, submit
from tests.support import Tenant, live_server
from tests.webhooks.receiver import Received, Receiver


@pytest.fixture
def settings(settings: Settings) -> Settings:
    # The API here only takes requests; the worker subprocesses run the jobs and send.
    return settings.model_copy(update={"webhook_allow_private": True, "webhook_allow_http": True})


class HoldingReceiver(Receiver):
    """Answers nothing (holds the request) while `holding` is set."""

    holding: asyncio.Event
    held = 0

    def app(self) -> FastAPI:
        app = FastAPI()
        self.holding = asyncio.Event()
        self.holding.set()

        @app.post("/{name}")
        async def hook(name: str, request: Request) -> Response:
            body = (await request.body()).decode()
            if self.holding.is_set():
                # Held until the worker that sent it is dead; never counted as received.
                self.held += 1
                self.arrived.set()
                while self.holding.is_set():
                    await asyncio.sleep(0.05)
                return Response(status_code=503)
            self.received.append(Received(name, dict(request.headers), body))
            self.arrived.set()
            return Response(status_code=200)

        return app


async def test_deliveries_pending_when_the_worker_is_killed_are_all_sent_after_a_restart(
    client: httpx.AsyncClient, tenant: Tenant, database_url: str, tmp_path: Path
) -> None:
    hooks = HoldingReceiver()
    async with live_server(hooks.app()) as base:
        endpoint = await client.post(
            f"/v1/organizations/{tenant.org_id}/webhooks",
            json={"url": f"{base}/crash", "event_types": ["job.succeeded"]},
            headers=tenant.headers,
        )
        assert endpoint.status_code == 201, endpoint.text
        env = {
            "GENWAY_WEBHOOK_ALLOW_PRIVATE": "true",
            "GENWAY_WEBHOOK_ALLOW_HTTP": "true",
            "GENWAY_WEBHOOK_TIMEOUT_S": "2",
            "GENWAY_WEBHOOK_POLL_S": "0.2",
        }
        with Processes(tmp_path / "p", database_url, extra_env=env) as processes:
            first = processes.worker("worker-1", concurrency=4)
            await first.wait_started()
            jobs = [await submit(client, tenant, count_job(seconds=0)) for _ in range(10)]
            try:
                async with asyncio.timeout(60):
                    while hooks.held < 1:
                        hooks.arrived.clear()
                        await hooks.arrived.wait()
            except TimeoutError:
                raise AssertionError(processes.logs()) from None
            first.kill()
            hooks.holding.clear()
            second = processes.worker("worker-2", concurrency=4)
            await second.wait_started()
            async with asyncio.timeout(90):
                while len({r.json["data"]["id"] for r in hooks.at("crash")}) < len(jobs):
                    hooks.arrived.clear()
                    await hooks.arrived.wait()
    delivered = {r.json["data"]["id"] for r in hooks.at("crash")}
    assert delivered == {job["id"] for job in jobs}

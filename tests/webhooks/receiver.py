"""A webhook receiver for tests: a real HTTP server on 127.0.0.1 that records every request
and answers with scripted status codes (then 200)."""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

import httpx
from fastapi import FastAPI, Request, Response

from genway.kit import fastjson


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: str

    @property
    def json(self) -> Any:
        return fastjson.loads(self.body)


@dataclass
class Receiver:
    received: list[Received] = field(default_factory=list)
    script: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    arrived: asyncio.Event = field(default_factory=asyncio.Event)

    def app(self) -> FastAPI:
        app = FastAPI()

        @app.post("/{name}")
        async def hook(name: str, request: Request) -> Response:
            body = (await request.body()).decode()
            self.received.append(Received(name, dict(request.headers), body))
            self.arrived.set()
            codes = self.script[name]
            return Response(status_code=codes.pop(0) if codes else 200, content="ok")

        return app

    def at(self, name: str) -> list[Received]:
        return [r for r in self.received if r.path == name]

    async def wait_for(self, name: str, count: int, timeout: float = 20.0) -> list[Received]:
        async with asyncio.timeout(timeout):
            while len(self.at(name)) < count:
                self.arrived.clear()
                await self.arrived.wait()
        return self.at(name)


async def settled_delivery(
    client: httpx.AsyncClient, url: str, headers: dict[str, str], timeout: float = 10.0
) -> dict[str, Any]:
    """The delivery at `url` (`.../deliveries/{id}`) once it is no longer pending."""
    async with asyncio.timeout(timeout):
        while True:
            delivery: dict[str, Any] = (await client.get(url, headers=headers)).json()
            if delivery["status"] != "pending":
                return delivery
            await asyncio.sleep(0.05)

"""A handful of clients that submit jobs and read them while a chaos test breaks a server,
recording every answer with the phase of the test it was sent in."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from tests.jobs.processes import ApiProcess, jobs_path
from tests.support import Tenant

BEFORE, OUTAGE, RECOVERING, AFTER = "before", "outage", "recovering", "after"
# A request that takes longer than this hangs (the client gives up and the test fails).
REQUEST_TIMEOUT_S = 10.0
# How long a client waits before retrying an answer that asked for a retry, at most.
RETRY_PAUSE_S = 0.2


@dataclass(frozen=True)
class Answer:
    phase: str  # when the request was sent
    ended_in: str  # the phase when its answer came
    method: str
    status: int  # 0: no answer (`error` says why)
    seconds: float
    retry_after: str | None = None
    body: Any = None
    error: str | None = None
    counted: bool = False  # the answer has rate-limit headers: the limiter counted it


@dataclass
class Load:
    """What the clients saw; `phase` is set by the test as it breaks and mends things."""

    tenant: Tenant
    phase: str = BEFORE
    answers: list[Answer] = field(default_factory=list)
    created: dict[str, int] = field(default_factory=dict)  # Idempotency-Key -> id (201)
    replayed: dict[str, int] = field(default_factory=dict)  # ... answered 200 on a retry
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    pause_s: float = 0.05  # between one client's submissions

    async def request(
        self, http: httpx.AsyncClient, method: str, path: str, **kwargs: Any
    ) -> httpx.Response | None:
        phase, started = self.phase, time.monotonic()
        try:
            response = await http.request(method, path, **kwargs)
        except httpx.HTTPError as exc:
            elapsed = time.monotonic() - started
            self.answers.append(Answer(phase, self.phase, method, 0, elapsed, error=repr(exc)))
            return None
        try:
            body = response.json()
        except ValueError:
            body = response.text[:300]
        self.answers.append(
            Answer(
                phase,
                self.phase,
                method,
                response.status_code,
                time.monotonic() - started,
                response.headers.get("retry-after"),
                body,
                counted="x-ratelimit-limit" in response.headers,
            )
        )
        return response

    async def submit(self, http: httpx.AsyncClient, key: str, spec: Mapping[str, Any]) -> int:
        """Submit until the API acknowledges the job (201, or 200 for a retry of a request it
        had committed), retrying with the same Idempotency-Key."""
        headers = {**self.tenant.headers, "Idempotency-Key": key}
        for attempt in itertools.count():
            response = await self.request(
                http, "POST", jobs_path(self.tenant.org_id), json=dict(spec), headers=headers
            )
            if response is not None and response.status_code in (200, 201):
                job_id: int = response.json()["id"]
                acknowledged = self.created if response.status_code == 201 else self.replayed
                acknowledged[key] = job_id
                return job_id
            if response is not None and response.status_code != 503:
                raise AssertionError(f"submission {key}: {response.status_code} {response.text}")
            assert attempt < 500, f"submission {key} never acknowledged"
            await asyncio.sleep(RETRY_PAUSE_S)
        raise AssertionError("unreachable")

    async def client(self, api: ApiProcess, name: str, spec: Mapping[str, Any]) -> None:
        """Submit jobs one after the other and, meanwhile, read the latest of them, until
        `stop`."""
        async with api.client(timeout=REQUEST_TIMEOUT_S) as http:
            mine: list[int] = []

            async def read_latest() -> None:
                while not self.stop.is_set():
                    if mine:
                        path = jobs_path(self.tenant.org_id, mine[-1])
                        await self.request(http, "GET", path, headers=self.tenant.headers)
                    await asyncio.sleep(0.1)

            reader = asyncio.create_task(read_latest())
            try:
                for n in itertools.count():
                    if self.stop.is_set():
                        break
                    mine.append(await self.submit(http, f"{name}-{n}", spec))
                    await asyncio.sleep(self.pause_s)
                await reader
            finally:
                reader.cancel()
                await asyncio.gather(reader, return_exceptions=True)

    async def poller(self, api: ApiProcess) -> None:
        """List the organization's jobs, over and over until `stop`."""
        async with api.client(timeout=REQUEST_TIMEOUT_S) as http:
            while not self.stop.is_set():
                path = jobs_path(self.tenant.org_id)
                await self.request(http, "GET", path, headers=self.tenant.headers)
                await asyncio.sleep(0.05)

    def acknowledged(self) -> dict[str, int]:
        return {**self.created, **self.replayed}

    def in_phase(self, *phases: str) -> list[Answer]:
        return [a for a in self.answers if a.phase in phases]

    def summary(self) -> str:
        lines = []
        for phase in (BEFORE, OUTAGE, RECOVERING, AFTER):
            answers = self.in_phase(phase)
            if answers:
                codes = Counter(a.status for a in answers)
                slowest = max(a.seconds for a in answers)
                lines.append(
                    f"  {phase:>10}: {len(answers)} requests {dict(sorted(codes.items()))}, "
                    f"slowest {slowest:.2f} s"
                )
        return "\n".join(lines)

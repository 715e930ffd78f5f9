"""Authenticated `GET /v1/users/me`, and clients polling a job (`GET
/v1/organizations/{id}/jobs/{job_id}`), vs unauthenticated `GET /health/live`; same server, same
run, 32 concurrent connections. Prints requests/s of each and their ratios (goals: /users/me
>= 0.7 with rate limits on; job polling >= 0.5).

Run: .venv/bin/python bench/auth_overhead.py [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import genway_service, load


async def submit_job(url: str, key: str, org_id: int) -> str:
    """A finished job to poll; its URL."""
    auth = {"Authorization": f"Bearer {key}"}
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as http:
        body = {"kind": "diagnostic.sleep", "input": {"seconds": 0}}
        job = (await http.post(f"/v1/organizations/{org_id}/jobs", json=body)).json()
        path = f"/v1/organizations/{org_id}/jobs/{job['id']}"
        for _ in range(200):
            if (await http.get(path)).json()["status"] == "succeeded":
                break
            await asyncio.sleep(0.05)
        return f"{url}{path}"


async def measure(
    url: str, key: str, org_id: int, seconds: float, rounds: int
) -> tuple[float, float, float]:
    auth = {"Authorization": f"Bearer {key}"}
    job_url = await submit_job(url, key, org_id)
    targets = [(f"{url}/health/live", {}), (f"{url}/v1/users/me", auth), (job_url, auth)]
    for target, headers in targets:  # warm-up
        await load(target, headers, seconds=1)
    rates: list[list[float]] = [[], [], []]
    for _ in range(rounds):  # interleaved, so drift hits every case alike
        for rate, (target, headers) in zip(rates, targets, strict=True):
            result = await load(target, headers, seconds=seconds)
            assert result.errors == 0, (target, result.errors)
            rate.append(result.rps)
    baseline, me, polling = (sum(rate) / rounds for rate in rates)
    return baseline, me, polling


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    # Limits stay on (their cost is part of the authenticated path) but high enough never to
    # refuse during the run.
    roomy = json.dumps(
        {"enterprise": {"requests_per_window": 10**9, "user_requests_per_window": 10**9}}
    )
    with genway_service({"GENWAY_TIER_LIMITS": roomy}) as service:
        created = service.cli(
            "orgs",
            "create",
            "--name",
            "bench",
            "--owner-email",
            "b@bench.io",
            "--tier",
            "enterprise",
        )
        baseline, authed, polling = asyncio.run(
            measure(
                service.url,
                str(created["api_key"]),
                int(created["organization_id"]),
                args.seconds,
                args.rounds,
            )
        )
    print("auth_overhead (SQLite, 1 uvicorn process, 32 connections, rate limits on)")
    print(f"  unauthenticated /health/live     : {baseline:8.0f} req/s")
    print(f"  authenticated   /v1/users/me     : {authed:8.0f} req/s")
    print(f"  polling         GET .../jobs/{{id}} : {polling:8.0f} req/s")
    print(f"  ratio /users/me / baseline       : {authed / baseline:8.2f}  (goal >= 0.70)")
    print(f"  ratio job polling / baseline     : {polling / baseline:8.2f}  (goal >= 0.50)")


if __name__ == "__main__":
    main()

"""Requests/s of an authenticated endpoint (`GET /v1/organizations/{id}/users`) with rate limits
on against off, with in-memory counters and with Redis, 32 connections, same run.
Prints the on/off ratio for each storage (goal: >= 0.9).

Run: .venv/bin/python bench/ratelimit_overhead.py [--seconds 4] [--rounds 2]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import genway_service, load

REDIS_URL = os.environ.get("GENWAY_BENCH_REDIS_URL", "redis://127.0.0.1:6379/7")
# Limits high enough never to refuse: what is measured is the cost of counting.
ROOMY = json.dumps(
    {"enterprise": {"requests_per_window": 10**9, "user_requests_per_window": 10**9}}
)


def measure(enabled: bool, redis: bool, seconds: float, rounds: int) -> float:
    env = {"GENWAY_RATELIMIT_ENABLED": str(enabled).lower(), "GENWAY_TIER_LIMITS": ROOMY}
    if redis:
        env["GENWAY_REDIS_URL"] = REDIS_URL
    with genway_service(env) as service:
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
        url = f"{service.url}/v1/organizations/{created['organization_id']}/users"
        headers = {"Authorization": f"Bearer {created['api_key']}"}

        async def run() -> float:
            await load(url, headers, seconds=1)  # warm-up
            results = [await load(url, headers, seconds=seconds) for _ in range(rounds)]
            assert all(r.errors == 0 for r in results), [r.errors for r in results]
            return sum(r.rps for r in results) / rounds

        return asyncio.run(run())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seconds", type=float, default=4.0)
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    print("ratelimit_overhead (1 uvicorn process, 32 connections)")
    for label, redis in (("memory", False), ("redis", True)):
        off = measure(False, redis, args.seconds, args.rounds)
        on = measure(True, redis, args.seconds, args.rounds)
        print(f"  {label:6} limits off : {off:8.0f} req/s")
        print(f"  {label:6} limits on  : {on:8.0f} req/s")
        print(f"  {label:6} ratio on/off: {on / off:7.2f}  (goal >= 0.90)")


if __name__ == "__main__":
    main()

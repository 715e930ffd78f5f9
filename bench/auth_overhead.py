"""Authenticated `GET /v1/users/me` vs unauthenticated `GET /health/live`, same server, same run,
32 concurrent connections. Prints requests/s of each and their ratio (goal: >= 0.6).

Run: .venv/bin/python bench/auth_overhead.py [--seconds 4] [--rounds 3]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import genway_service, load


async def measure(url: str, key: str, seconds: float, rounds: int) -> tuple[float, float]:
    auth = {"Authorization": f"Bearer {key}"}
    await load(f"{url}/health/live", {}, seconds=1)  # warm-up
    await load(f"{url}/v1/users/me", auth, seconds=1)
    baseline, authed = [], []
    for _ in range(rounds):  # interleaved, so drift hits both sides alike
        base = await load(f"{url}/health/live", {}, seconds=seconds)
        me = await load(f"{url}/v1/users/me", auth, seconds=seconds)
        assert base.errors == 0 and me.errors == 0, (base.errors, me.errors)
        baseline.append(base.rps)
        authed.append(me.rps)
    return sum(baseline) / rounds, sum(authed) / rounds


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
        baseline, authed = asyncio.run(
            measure(service.url, str(created["api_key"]), args.seconds, args.rounds)
        )
    print("auth_overhead (SQLite, 1 uvicorn process, 32 connections)")
    print(f"  unauthenticated /health/live : {baseline:8.0f} req/s")
    print(f"  authenticated   /v1/users/me : {authed:8.0f} req/s")
    print(f"  ratio authenticated/baseline : {authed / baseline:8.2f}  (goal >= 0.60)")


if __name__ == "__main__":
    main()

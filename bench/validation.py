"""What a PR validation costs over running the same commands yourself.

A real `genway serve` (SQLite, embedded worker of `--slots` slots) against the fake GitHub of
the test suite (`tests/fakes/github`: REST, git smart HTTP and webhooks, on loopback). A project
is pinned to a small Python repository (`--modules` modules with a test each) whose setup
compiles it and whose tests run with unittest and write a JUnit report. Static checks are off
(`lint_commands: []`), so both sides run exactly the same commands.

Figures, each against a baseline measured in the same run:
- one validation with a warm mirror: a commit pushed to the pull request's branch → GitHub's
  `synchronize` delivery → fetch, snapshot, setup and tests in the sandbox, JUnit parsed → the
  `success` commit status posted; against the same setup and test commands run directly by
  `/bin/sh` in a fresh checkout (median of `--runs` each; goal ≤ 1.2);
- `--concurrent` pull requests opened at once and validated by `--slots` slots, until the last
  status; against the same commands run directly, `--slots` at a time.

Run: .venv/bin/python bench/validation.py [--runs 5] [--concurrent 10] [--slots 2]
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))
sys.path.insert(0, str(BENCH.parent))

import httpx  # noqa: E402
from common import Service, genway_service  # noqa: E402
from tests.fakes.github import FakeGitHub  # noqa: E402
from tests.github.conftest import RUN_TESTS  # noqa: E402

from genway.sandbox import sandbox_unavailable_reason  # noqa: E402

SETUP = "python3 -m compileall -q ."
TESTS = "python3 run_tests.py"


def repository(modules: int, work_ms: int) -> dict[str, str]:
    """`modules` modules, each with a unittest that does about `work_ms` of computing."""
    files = {"run_tests.py": RUN_TESTS}
    for n in range(modules):
        files[f"mod{n}.py"] = (
            "def work(n):\n    total = 0\n    for i in range(n):\n        total += i * i\n"
            "    return total\n"
        )
        files[f"test_mod{n}.py"] = (
            f"import unittest\n\nfrom mod{n} import work\n\n\n"
            f"class Mod{n}(unittest.TestCase):\n    def test_work(self):\n"
            f"        self.assertGreater(work({work_ms * 20_000}), 0)\n"
        )
    return files


def direct(clone_url: str, sha: str) -> float:
    """Seconds for a fresh checkout's setup and tests run by /bin/sh (the checkout excluded)."""
    with tempfile.TemporaryDirectory() as tmp:
        subprocess.run(["git", "clone", "-q", clone_url, tmp], check=True, capture_output=True)
        subprocess.run(["git", "-C", tmp, "checkout", "-q", sha], check=True, capture_output=True)
        started = time.perf_counter()
        for command in (SETUP, TESTS):
            subprocess.run(["/bin/sh", "-c", command], cwd=tmp, check=True, capture_output=True)
        return time.perf_counter() - started


async def direct_parallel(clone_url: str, sha: str, count: int, slots: int) -> float:
    semaphore = asyncio.Semaphore(slots)

    async def one() -> None:
        async with semaphore:
            await asyncio.to_thread(direct, clone_url, sha)

    started = time.perf_counter()
    await asyncio.gather(*(one() for _ in range(count)))
    return time.perf_counter() - started


async def success_at(github: FakeGitHub, sha: str, timeout: float = 300) -> float:
    """When the `success` status of `sha` was posted (epoch seconds)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for status in github.statuses("octo", "bench", sha):
            if status.state == "success":
                return status.created_at
            if status.state in ("failure", "error"):
                raise RuntimeError(f"validation of {sha} ended {status.state}")
        await asyncio.sleep(0.005)
    raise TimeoutError(f"no status for {sha}")


async def setup_project(service: Service, github: FakeGitHub, token: str) -> None:
    created = service.cli(
        "orgs",
        "create",
        "--name",
        "bench",
        "--owner-email",
        "b@example.com",
        "--tier",
        "enterprise",
    )
    headers = {"Authorization": f"Bearer {created['api_key']}"}
    org = f"{service.url}/v1/organizations/{created['organization_id']}"
    async with httpx.AsyncClient(timeout=60) as client:
        made = await client.put(f"{org}/github/connection", json={"token": token}, headers=headers)
        made.raise_for_status()
        project = await client.post(
            f"{org}/projects",
            json={
                "name": "bench",
                "github_repo": "octo/bench",
                "setup_commands": [SETUP],
                "test_commands": [TESTS],
                "lint_commands": [],
            },
            headers=headers,
        )
        project.raise_for_status()


async def main(args: argparse.Namespace) -> None:
    reason = sandbox_unavailable_reason()
    if reason is not None:
        raise SystemExit(f"validations need the sandbox: {reason}")
    with tempfile.TemporaryDirectory() as tmp:
        async with FakeGitHub(Path(tmp) / "github") as github:
            token = github.add_user("octo")
            repo = github.create_repo("octo", "bench", repository(args.modules, args.work_ms))
            env = {
                "GENWAY_GITHUB_API_URL": github.api_url,
                "GENWAY_EMBEDDED_WORKER": "true",
                "GENWAY_WORKER_CONCURRENCY": str(args.slots),
            }
            with genway_service(env) as service:
                await setup_project(service, github, token)
                await measure(args, github, repo.clone_url)


async def measure(args: argparse.Namespace, github: FakeGitHub, clone_url: str) -> None:
    sha = github.push_files("octo", "bench", "change", {"NOTES.md": "0\n"}, author="octo")
    started = time.time()
    await github.open_pull("octo", "bench", head="change", title="bench", user="octo")
    cold = await success_at(github, sha) - started
    print(f"first validation (cold mirror): {cold:.2f} s")

    validated, baseline = [], []
    for n in range(args.runs):
        notes = {"NOTES.md": f"{n + 1}\n"}
        sha = github.push_files("octo", "bench", "change", notes, author="octo")
        started = time.time()
        validated.append(await success_at(github, sha) - started)
        baseline.append(await asyncio.to_thread(direct, clone_url, sha))
    v, b = statistics.median(validated), statistics.median(baseline)
    print(
        f"one validation, warm mirror: {v:.3f} s (median of {args.runs}); the same commands "
        f"directly: {b:.3f} s; overhead ratio {v / b:.2f} (+{(v - b) * 1000:.0f} ms)"
    )

    shas = [
        github.push_files("octo", "bench", f"many-{n}", {f"n{n}.txt": "x\n"}, author="octo")
        for n in range(args.concurrent)
    ]
    started = time.time()
    await asyncio.gather(
        *(
            github.open_pull("octo", "bench", head=f"many-{n}", title=f"pr {n}", user="octo")
            for n in range(args.concurrent)
        )
    )
    ends = await asyncio.gather(*(success_at(github, s) for s in shas))
    makespan = max(ends) - started
    direct_makespan = await direct_parallel(clone_url, shas[0], args.concurrent, args.slots)
    print(
        f"{args.concurrent} concurrent validations on {args.slots} slots: {makespan:.2f} s; the "
        f"same commands directly, {args.slots} at a time: {direct_makespan:.2f} s; ratio "
        f"{makespan / direct_makespan:.2f}"
    )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--concurrent", type=int, default=10)
    parser.add_argument("--slots", type=int, default=2)
    parser.add_argument("--modules", type=int, default=20)
    parser.add_argument("--work-ms", type=int, default=50)
    asyncio.run(main(parser.parse_args()))

"""Webhook deliveries and the organization event stream, on real processes on 127.0.0.1.

Part 1, deliveries (PostgreSQL + Redis; one `genway serve` without its embedded worker, one
`genway worker --concurrency 8`, `webhook_concurrency` 32): an organization endpoint for
`job.succeeded` points at a receiver (a bare ASGI app on uvicorn, a process of its own, that
answers 200 at once and notes the time of every request; signatures are checked afterwards with
the `standardwebhooks` library). Deliveries/s are counted at the receiver, first to last receipt:

  drain     `--jobs` (1,000) deliveries queued while no worker runs (redeliveries through the
            API of the live phase's deliveries: same payloads, same `webhook-id`s), then one
            worker started: its sender alone, nothing else to do.
  live      `--jobs` no-op jobs queued while no worker runs, then one worker started: it runs
            the jobs and sends their `job.succeeded` deliveries at the same time. Also the
            end-to-end rate (first job started -> last receipt) and the jobs' own rate.
  baseline  the same signed payloads (signed again per request with
            `standardwebhooks.Webhook(secret).sign`) posted to the same receiver by a plain
            `httpx.AsyncClient` loop from this process: one at a time, and 32 at a time (the
            sender's concurrency, `--webhook-concurrency`). Ratios are Genway / baseline,
            measured in the same run. Also the cores each process used meanwhile.

  Event delay: the job's `finished_at` (in the payload's `data`) to its receipt, for a trickle
  of `--trickle` (100) jobs at `--trickle-rate` (20/s) with the worker idle, and for the live
  burst (where it includes the wait behind the backlog).

Part 2, the organization stream (PostgreSQL + Redis): two `genway serve` (no embedded worker)
and one `genway worker`; `--subscribers` (1,000) WebSocket subscribers to
`/v1/organizations/{org_id}/events`, half on each API, in this process: a minimal WebSocket
client on uvloop, so that the instrument costs little (a job is 4 events, 4,000 messages).
After a warm-up job that every subscriber must see end, `--stream-jobs` (30) jobs at
`--stream-rate` (2/s), submitted to the two APIs in turn. For every message: its receipt time
minus the event's `created_at` (the time the committing process took for the event in its
transaction). Also the client's own event-loop lag, and the cores each process used.

Run: .venv/bin/python bench/webhooks.py [--jobs 1000] [--subscribers 1000] [--parts 1,2]
Needs PostgreSQL (--pg-url; the database is created if missing and its schema replaced) and
Redis (--redis-url); when either cannot be reached, the benchmark says so and skips both parts.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast
from urllib.parse import parse_qsl

BENCH = Path(__file__).resolve().parent
sys.path.insert(0, str(BENCH))

import httpx  # noqa: E402
from common import GENWAY, ROOT, free_port, post_load, reset_postgres  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

DEFAULT_PG = "postgresql+asyncpg://postgres@127.0.0.1:5432/genway_bench_webhooks"
DEFAULT_REDIS = "redis://127.0.0.1:6379/0"
JOB_BODY = json.dumps({"kind": "diagnostic.sleep", "input": {"seconds": 0}}).encode()
SECRET_KEY = "bench-webhooks-secret-key-0123456789abcdef0123456789"
# A long lease: the worker's lease heartbeat never fires during the run (as bench/http_jobs.py).
LEASE_S = "3600"
WAIT_S = 120.0
HOOK, BASE = "/hook", "/base"


# --- the receiver (a process of its own) ---------------------------------------------------


def run_receiver(port: int) -> None:
    """A bare ASGI app on uvicorn: POST anywhere -> 200 "ok", noting (time, webhook-id,
    webhook-timestamp, webhook-signature, body) under the path; `GET /_count` and
    `GET /_records?path=...&start=...` hand them out."""
    import uvicorn

    records: dict[str, list[list[Any]]] = defaultdict(list)

    async def app(
        scope: dict[str, Any], receive: Callable[..., Any], send: Callable[..., Any]
    ) -> None:
        if scope["type"] != "http":
            return
        if scope["method"] == "POST":
            body = b""
            while True:
                message = await receive()
                body += message.get("body", b"")
                if not message.get("more_body"):
                    break
            now = time.time()
            headers = dict(scope["headers"])
            records[scope["path"]].append(
                [
                    now,
                    headers.get(b"webhook-id", b"").decode(),
                    headers.get(b"webhook-timestamp", b"").decode(),
                    headers.get(b"webhook-signature", b"").decode(),
                    body.decode(),
                ]
            )
            answer = b"ok"
        elif scope["path"] == "/_count":
            answer = json.dumps({path: len(rows) for path, rows in records.items()}).encode()
        else:
            query = dict(parse_qsl(scope["query_string"].decode()))
            answer = json.dumps(records[query["path"]][int(query.get("start", 0)) :]).encode()
        await send(
            {
                "type": "http.response.start",
                "status": 200,
                "headers": [
                    (b"content-type", b"text/plain"),
                    (b"content-length", b"%d" % len(answer)),
                ],
            }
        )
        await send({"type": "http.response.body", "body": answer})

    uvicorn.run(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="off"
    )


class Receiver:
    def __init__(self, url: str) -> None:
        self.url = url
        self.client = httpx.Client(base_url=url, timeout=30)  # one keep-alive connection

    def count(self, path: str) -> int:
        return int(self.client.get("/_count").json().get(path, 0))

    def records(self, path: str, start: int = 0) -> list[list[Any]]:
        return list(self.client.get("/_records", params={"path": path, "start": start}).json())

    async def wait_for(
        self, path: str, count: int, meter: CpuMeter | None = None, timeout: float = WAIT_S
    ) -> dict[str, float]:
        """Wait for `count` requests on `path`; with a meter, the cores used from the first
        new request on (polled every 20 ms) to the last."""
        deadline = time.monotonic() + timeout
        begin = self.count(path) if meter is not None else 0
        metering = False
        while (have := await asyncio.to_thread(self.count, path)) < count:
            if meter is not None and not metering and have > begin:
                meter.start()
                metering = True
            if time.monotonic() > deadline:
                raise RuntimeError(f"the receiver has {have}/{count} requests on {path}")
            await asyncio.sleep(0.02 if meter is not None else 0.1)
        return meter.stop() if meter is not None and metering else {}


# --- processes -------------------------------------------------------------------------------


class Proc:
    """A subprocess started in ROOT, logging to a file; stopped with SIGTERM, then killed."""

    def __init__(self, name: str, args: list[str], env: dict[str, str], log_dir: Path) -> None:
        self.name, self.args, self.env = name, args, env
        self.log_path = log_dir / f"{name}.log"
        self.popen: subprocess.Popen[bytes] | None = None

    @property
    def pid(self) -> int:
        assert self.popen is not None
        return self.popen.pid

    def start(self) -> Proc:
        with self.log_path.open("ab") as log:
            self.popen = subprocess.Popen(
                self.args,
                env=self.env,
                cwd=ROOT,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        return self

    def stop(self) -> None:
        if self.popen is None or self.popen.poll() is not None:
            return
        self.popen.terminate()
        try:
            self.popen.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()

    def tail(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")[-3000:]
        except FileNotFoundError:
            return "(no log)"


@contextlib.contextmanager
def processes() -> Iterator[list[Proc]]:
    """Every process started in the block is stopped at its end; their logs shown on failure."""
    started: list[Proc] = []
    try:
        yield started
    except BaseException:
        for proc in started:
            print(f"--- {proc.name} log:\n{proc.tail()}", file=sys.stderr)
        raise
    finally:
        for proc in reversed(started):
            proc.stop()


def wait_http(url: str, proc: Proc, timeout: float = 90.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.popen is not None and proc.popen.poll() is not None:
            raise RuntimeError(f"{proc.name} exited with {proc.popen.returncode}")
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"{proc.name} did not answer {url}")


def cpu_s(pid: int | None = None) -> float:
    """CPU seconds (user + system) a process has used so far (this one when None)."""
    if pid is None:
        return time.process_time()
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return float("nan")
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def command_cpu_s(name: str) -> float:
    """CPU seconds used by every process named `name` (with its reaped children)."""
    total = 0
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            head, _, rest = stat.read_text().rpartition(")")
        except OSError:
            continue
        if head.partition("(")[2] == name:
            fields = rest.split()
            total += sum(int(value) for value in fields[11:15])
    return total / os.sysconf("SC_CLK_TCK")


def machine_ticks() -> tuple[int, int]:
    """(busy, total) CPU ticks of the machine so far (`/proc/stat`); (0, 0) elsewhere."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except OSError:
        return 0, 0
    return sum(values) - values[3] - values[4], sum(values)


class CpuMeter:
    """Cores used between `start` and `stop` by some processes, by PostgreSQL and Redis, by
    everything else on the machine (`other`: another user's work shows there), in all."""

    SERVERS = ("postgres", "redis-server")

    def __init__(self, pids: dict[str, int | None]) -> None:
        self.pids = pids

    def _sample(self) -> dict[str, float]:
        found = {name: cpu_s(pid) for name, pid in self.pids.items()}
        return found | {name: command_cpu_s(name) for name in self.SERVERS}

    def start(self) -> None:
        self._began = time.perf_counter()
        self._cpu = self._sample()
        self._ticks = machine_ticks()

    def stop(self) -> dict[str, float]:
        wall = time.perf_counter() - self._began
        used = {name: (value - self._cpu[name]) / wall for name, value in self._sample().items()}
        busy, total = machine_ticks()
        if total > self._ticks[1]:
            share = (busy - self._ticks[0]) / (total - self._ticks[1])
            machine = share * (os.cpu_count() or 1)
            used["other"] = max(0.0, machine - sum(used.values()))
            used["machine"] = machine
        return used


def cores(used: dict[str, float]) -> str:
    return ", ".join(f"{name} {value:.2f}" for name, value in used.items())


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def genway_env(args: argparse.Namespace, data_dir: str) -> dict[str, str]:
    return {
        **os.environ,
        "GENWAY_DATA_DIR": data_dir,
        "GENWAY_SECRET_KEY": SECRET_KEY,
        "GENWAY_LOG_LEVEL": "WARNING",
        "GENWAY_DATABASE_URL": args.pg_url,
        "GENWAY_REDIS_URL": args.redis_url,
        "GENWAY_EVENTS_CHANNEL": f"genway:bench-webhooks:{os.getpid()}",
        "GENWAY_EMBEDDED_WORKER": "false",
        "GENWAY_LEASE_S": LEASE_S,
        "GENWAY_WEBHOOK_ALLOW_PRIVATE": "true",
        "GENWAY_WEBHOOK_ALLOW_HTTP": "true",
        # One organization holds all the subscribers of part 2 (the default cap is 100).
        "GENWAY_MAX_STREAMS_PER_ORG": str(args.subscribers + 100),
    }


def prepare_database(env: dict[str, str], pg_url: str) -> None:
    asyncio.run(reset_postgres(pg_url))
    subprocess.run([GENWAY, "migrate"], env=env, cwd=ROOT, check=True, capture_output=True)


def create_org(env: dict[str, str], name: str) -> tuple[int, str]:
    """An enterprise organization (limits far above this load) and its owner's API key."""
    out = subprocess.run(
        [GENWAY, "orgs", "create", "--name", name, "--owner-email", f"{name}@bench.io",
         "--tier", "enterprise", "--json"],
        env=env, cwd=ROOT, check=True, capture_output=True, text=True,
    )  # fmt: skip
    created = json.loads(out.stdout)
    return int(created["organization_id"]), str(created["api_key"])


def serve(name: str, env: dict[str, str], log_dir: Path, started: list[Proc]) -> str:
    port = free_port()
    proc = Proc(
        name,
        [GENWAY, "serve", "--host", "127.0.0.1", "--port", str(port), "--no-migrate"],
        env,
        log_dir,
    )
    started.append(proc.start())
    url = f"http://127.0.0.1:{port}"
    wait_http(f"{url}/health/live", proc)
    return url


# --- figures ---------------------------------------------------------------------------------


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else float("nan")


def window_rate(times: list[float]) -> float:
    """Requests per second over the receipt window (first to last)."""
    return (len(times) - 1) / (max(times) - min(times)) if len(times) > 1 else float("nan")


def iso_ts(value: str) -> float:
    return datetime.fromisoformat(value.replace("Z", "+00:00")).timestamp()


def verify(records: list[list[Any]], secret: str) -> int:
    """How many deliveries fail verification with the `standardwebhooks` library."""
    from standardwebhooks import Webhook

    webhook, bad = Webhook(secret), 0
    for _at, msg_id, stamp, signature, body in records:
        headers = {"webhook-id": msg_id, "webhook-timestamp": stamp, "webhook-signature": signature}
        try:
            webhook.verify(body, headers)
        except Exception:
            bad += 1
    return bad


# --- part 1: deliveries ---------------------------------------------------------------------


async def submit_trickle(url: str, org_id: int, key: str, count: int, rate: float) -> None:
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as client:
        began = time.perf_counter()
        pending = []
        for index in range(count):
            await asyncio.sleep(max(0.0, began + index / rate - time.perf_counter()))
            pending.append(
                asyncio.create_task(
                    client.post(f"/v1/organizations/{org_id}/jobs", content=JOB_BODY)
                )
            )
        for response in await asyncio.gather(*pending):
            assert response.status_code == 201, response.text


async def list_deliveries(
    client: httpx.AsyncClient, org_id: int, endpoint_id: int
) -> list[dict[str, Any]]:
    found: list[dict[str, Any]] = []
    cursor = None
    while True:
        params: dict[str, Any] = {"limit": 100} | ({"cursor": cursor} if cursor else {})
        page = await client.get(
            f"/v1/organizations/{org_id}/webhooks/{endpoint_id}/deliveries", params=params
        )
        assert page.status_code == 200, page.text
        found.extend(page.json()["items"])
        cursor = page.json()["next_cursor"]
        if not cursor:
            return found


async def redeliver_all(
    url: str, org_id: int, key: str, endpoint_id: int, delivery_ids: list[int]
) -> None:
    auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    base = f"/v1/organizations/{org_id}/webhooks/{endpoint_id}/deliveries"
    todo = iter(delivery_ids)
    async with httpx.AsyncClient(base_url=url, headers=auth, timeout=30) as client:

        async def one() -> None:
            for delivery_id in todo:
                answer = await client.post(f"{base}/{delivery_id}/redeliver")
                assert answer.status_code == 202, answer.text

        await asyncio.gather(*(one() for _ in range(8)))


async def baseline(
    target: str, secret: str, payloads: list[tuple[str, str]], concurrency: int
) -> None:
    """The same payloads, signed per request as a sender would, posted by a plain httpx loop
    (`concurrency` of them sharing one client)."""
    from standardwebhooks import Webhook

    webhook = Webhook(secret)
    todo = iter(payloads)
    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=10, trust_env=False, limits=limits) as client:

        async def loop() -> None:
            for msg_id, body in todo:
                now = datetime.now(UTC)
                headers = {
                    "content-type": "application/json",
                    "webhook-id": msg_id,
                    "webhook-timestamp": str(int(now.timestamp())),
                    "webhook-signature": webhook.sign(msg_id, now, body),
                }
                answer = await client.post(target, content=body, headers=headers)
                assert answer.status_code == 200

        await asyncio.gather(*(loop() for _ in range(concurrency)))


async def deliveries_part(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    env = genway_env(args, str(log_dir))
    env["GENWAY_WORKER_CONCURRENCY"] = str(args.concurrency)
    env["GENWAY_WEBHOOK_CONCURRENCY"] = str(args.webhook_concurrency)
    await asyncio.to_thread(prepare_database, env, args.pg_url)
    n = args.jobs
    result: dict[str, Any] = {}
    with processes() as started:
        port = free_port()
        receiver_proc = Proc(
            "receiver", [sys.executable, __file__, "--receiver", str(port)], env, log_dir
        )
        started.append(receiver_proc.start())
        receiver = Receiver(f"http://127.0.0.1:{port}")
        await asyncio.to_thread(wait_http, f"{receiver.url}/_count", receiver_proc)
        api = await asyncio.to_thread(serve, "api", env, log_dir, started)
        api_pid = started[-1].pid
        org_id, key = await asyncio.to_thread(create_org, env, "hooks")
        auth = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
        async with httpx.AsyncClient(base_url=api, headers=auth, timeout=30) as client:
            created = await client.post(
                f"/v1/organizations/{org_id}/webhooks",
                json={"url": f"{receiver.url}{HOOK}", "event_types": ["job.succeeded"]},
            )
            assert created.status_code == 201, created.text
            endpoint_id, secret = int(created.json()["id"]), str(created.json()["secret"])

        def worker() -> Proc:
            proc = Proc(
                "worker", [GENWAY, "worker", "--concurrency", str(args.concurrency)], env, log_dir
            )
            started.append(proc.start())
            return proc

        # live: N jobs queued, then one worker runs them and sends their deliveries
        submits = await post_load(
            f"{api}/v1/organizations/{org_id}/jobs",
            {"Authorization": f"Bearer {key}"},
            JOB_BODY,
            total=n,
            concurrency=32,
        )
        assert submits.errors == 0 and submits.requests == n, "submissions failed"
        proc = worker()
        meter = CpuMeter(
            {"worker": proc.pid, "receiver": receiver_proc.pid, "api": api_pid, "bench": None}
        )
        result["cpu_live"] = await receiver.wait_for(HOOK, n, meter)
        live = await asyncio.to_thread(receiver.records, HOOK)
        # trickle: jobs one by one (the worker idle otherwise)
        await submit_trickle(api, org_id, key, args.trickle, args.trickle_rate)
        await receiver.wait_for(HOOK, n + args.trickle)
        trickle = (await asyncio.to_thread(receiver.records, HOOK, n))[: args.trickle]
        await asyncio.to_thread(proc.stop)

        # drain: the live phase's deliveries queued again while no worker runs
        async with httpx.AsyncClient(base_url=api, headers=auth, timeout=30) as client:
            listed = await list_deliveries(client, org_id, endpoint_id)
        live_ids = {record[1] for record in live}
        first_tries = [d for d in listed if d["message_id"] in live_ids]
        result["retried"] = sum(1 for d in first_tries if d["attempts"] != 1)
        result["not_succeeded"] = sum(1 for d in first_tries if d["status"] != "succeeded")
        await redeliver_all(api, org_id, key, endpoint_id, sorted(d["id"] for d in first_tries))
        proc = worker()
        meter = CpuMeter({"worker": proc.pid, "receiver": receiver_proc.pid, "bench": None})
        result["cpu_drain"] = await receiver.wait_for(
            HOOK, n + args.trickle + len(first_tries), meter
        )
        drain = await asyncio.to_thread(receiver.records, HOOK, n + args.trickle)
        await asyncio.to_thread(proc.stop)

        # baselines: the live phase's payloads, from this process to the same receiver
        payloads = [(record[1], record[4]) for record in live]
        meter = CpuMeter({"client": None, "receiver": receiver_proc.pid})
        meter.start()
        await baseline(f"{receiver.url}{BASE}", secret, payloads, 1)
        result["cpu_sequential"] = meter.stop()
        sequential = await asyncio.to_thread(receiver.records, BASE)
        meter.start()
        await baseline(f"{receiver.url}{BASE}", secret, payloads, args.webhook_concurrency)
        result["cpu_concurrent"] = meter.stop()
        concurrent = (await asyncio.to_thread(receiver.records, BASE))[len(payloads) :]
        receiver.client.close()

    every = live + trickle + drain + sequential + concurrent
    result["bad_signatures"] = verify(every, secret)
    result["deliveries"] = {"live": len(live), "trickle": len(trickle), "drain": len(drain)}
    result["duplicates"] = {
        name: len(rows) - len({r[1] for r in rows})
        for name, rows in (("live", live), ("trickle", trickle), ("drain", drain))
    }
    jobs = [json.loads(r[4])["data"] for r in live]
    first_started = min(iso_ts(job["started_at"]) for job in jobs)
    last_finished = max(iso_ts(job["finished_at"]) for job in jobs)
    live_times = [r[0] for r in live]
    result["rates"] = {
        "drain": window_rate([r[0] for r in drain]),
        "live": window_rate(live_times),
        "live_e2e": n / (max(live_times) - first_started),
        "live_jobs": n / (last_finished - first_started),
        "sequential": window_rate([r[0] for r in sequential]),
        "concurrent": window_rate([r[0] for r in concurrent]),
    }

    def delays(rows: list[list[Any]]) -> list[float]:
        return [(r[0] - iso_ts(json.loads(r[4])["data"]["finished_at"])) * 1000 for r in rows]

    result["delay_trickle"] = delays(trickle)
    result["delay_live"] = delays(live)
    return result


# --- part 2: the organization stream -----------------------------------------------------------


WS_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


class LeanSubscriber(asyncio.Protocol):
    """A minimal WebSocket client, so that the measuring process costs little per message: the
    opening handshake, then the server's (unmasked, unfragmented) frames, each noted with the
    time its bytes were handed to the event loop; pings answered. No compression offered."""

    def __init__(self, path: str, host: str, headers: dict[str, str], api: int) -> None:
        self.api = api
        self.key = base64.b64encode(os.urandom(16))
        lines = [
            f"GET {path} HTTP/1.1",
            f"Host: {host}",
            "Upgrade: websocket",
            "Connection: Upgrade",
            f"Sec-WebSocket-Key: {self.key.decode()}",
            "Sec-WebSocket-Version: 13",
            *(f"{name}: {value}" for name, value in headers.items()),
        ]
        self.request = ("\r\n".join(lines) + "\r\n\r\n").encode()
        self.buffer = bytearray()
        self.opened: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.messages: list[tuple[float, bytes]] = []
        self.succeeded = 0
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_exception(exc or ConnectionError("closed during the handshake"))

    def data_received(self, data: bytes) -> None:
        now = time.time()
        buffer = self.buffer
        buffer += data
        if not self.opened.done():
            end = buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = bytes(buffer[:end]).decode("latin-1")
            accept = base64.b64encode(hashlib.sha1(self.key + WS_GUID).digest()).decode()
            if " 101 " not in head.split("\r\n", 1)[0] or accept not in head:
                self.opened.set_exception(ConnectionError(head.split("\r\n", 1)[0]))
                return
            del buffer[: end + 4]
            self.opened.set_result(None)
        while len(buffer) >= 2:
            length, offset = buffer[1] & 0x7F, 2
            if length == 126:
                if len(buffer) < 4:
                    return
                length, offset = int.from_bytes(buffer[2:4], "big"), 4
            elif length == 127:
                if len(buffer) < 10:
                    return
                length, offset = int.from_bytes(buffer[2:10], "big"), 10
            if len(buffer) < offset + length:
                return
            opcode = buffer[0] & 0x0F
            payload = bytes(buffer[offset : offset + length])
            del buffer[: offset + length]
            if opcode == 1:
                self.messages.append((now, payload))
                if b'"job.succeeded"' in payload:
                    self.succeeded += 1
            elif opcode == 9 and self.transport is not None:  # ping: a pong (masked, key 0)
                self.transport.write(bytes([0x8A, 0x80 | len(payload)]) + bytes(4) + payload)

    def close(self) -> None:
        if self.transport is not None:
            self.transport.close()


async def stream_measure(
    apis: list[str],
    org_id: int,
    key: str,
    args: argparse.Namespace,
    meter: CpuMeter,
    channel: str,
) -> dict[str, Any]:
    from redis.asyncio import Redis

    auth = {"Authorization": f"Bearer {key}"}
    json_auth = {**auth, "Content-Type": "application/json"}
    subscribers: list[LeanSubscriber] = []
    gate = asyncio.Semaphore(32)  # connections being opened at once
    loop = asyncio.get_running_loop()

    async def subscribe(index: int) -> None:
        url = httpx.URL(apis[index % len(apis)])
        path = f"/v1/organizations/{org_id}/events"
        protocol = LeanSubscriber(path, f"{url.host}:{url.port}", auth, index % len(apis))
        subscribers.append(protocol)
        async with gate:
            await loop.create_connection(lambda: protocol, url.host, url.port)
            await asyncio.wait_for(protocol.opened, 60)

    lags: list[float] = []
    tapped: list[tuple[float, bytes]] = []  # the fan-out's Redis channel, as the APIs hear it
    redis = Redis.from_url(args.redis_url)
    pubsub = redis.pubsub()
    await pubsub.subscribe(channel)

    async def tap() -> None:
        async for message in pubsub.listen():
            if message["type"] == "message":
                tapped.append((time.time(), message["data"]))

    async def lag_probe() -> None:
        while True:
            began = time.perf_counter()
            await asyncio.sleep(0.01)
            lags.append((time.perf_counter() - began - 0.01) * 1000)

    async def all_succeeded(count: int, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while min(sub.succeeded for sub in subscribers) < count:
            if time.monotonic() > deadline:
                behind = sum(1 for sub in subscribers if sub.succeeded < count)
                raise RuntimeError(f"{behind} subscribers saw fewer than {count} jobs end")
            await asyncio.sleep(0.05)

    clients = [httpx.AsyncClient(base_url=api, headers=json_auth, timeout=30) for api in apis]
    began = time.perf_counter()
    try:
        async with asyncio.timeout(WAIT_S):
            await asyncio.gather(*(subscribe(i) for i in range(args.subscribers)))
        connect_s = time.perf_counter() - began
        # Warm-up: one job every subscriber sees end (so every one is subscribed).
        answer = await clients[0].post(f"/v1/organizations/{org_id}/jobs", content=JOB_BODY)
        assert answer.status_code == 201, answer.text
        warmup_id = answer.json()["id"]
        await all_succeeded(1, 30)
        probe = asyncio.create_task(lag_probe())
        tapping = asyncio.create_task(tap())
        meter.start()
        interval = 1 / args.stream_rate
        start = time.perf_counter()
        for index in range(args.stream_jobs):
            await asyncio.sleep(max(0.0, start + index * interval - time.perf_counter()))
            client = clients[index % len(clients)]
            answer = await client.post(f"/v1/organizations/{org_id}/jobs", content=JOB_BODY)
            assert answer.status_code == 201, answer.text
        await all_succeeded(1 + args.stream_jobs, 60)
        used = meter.stop()
        await asyncio.sleep(0.5)  # stragglers of the last job (none expected)
        probe.cancel()
        tapping.cancel()
    finally:
        await pubsub.aclose()
        await redis.aclose()
        for subscriber in subscribers:
            subscriber.close()
        for client in clients:
            await client.aclose()

    import orjson

    delays: list[float] = []
    by_type: dict[str, list[float]] = defaultdict(list)
    by_api: dict[int, list[float]] = defaultdict(list)
    events: set[tuple[int, int]] = set()
    counts: Counter[int] = Counter()
    # per event: when it was made, reached Redis, reached its first and its last subscriber
    made: dict[tuple[int, int], float] = {}
    heard: dict[tuple[int, int], float] = {}
    first: dict[tuple[int, int], float] = {}
    last: dict[tuple[int, int], float] = {}
    for at, raw in tapped:
        event = orjson.loads(raw)
        if "job_id" in event:
            heard.setdefault((event["job_id"], event["seq"]), at)
    for index, subscriber in enumerate(subscribers):
        for at, raw in subscriber.messages:
            message = orjson.loads(raw)
            if message.get("job_id") in (None, warmup_id):
                continue
            delay = (at - iso_ts(message["created_at"])) * 1000
            delays.append(delay)
            by_type[message["type"]].append(delay)
            by_api[subscriber.api].append(delay)
            ident = (message["job_id"], message["seq"])
            events.add(ident)
            counts[index] += 1
            made.setdefault(ident, iso_ts(message["created_at"]))
            first[ident] = min(first.get(ident, at), at)
            last[ident] = max(last.get(ident, at), at)
    return {
        "connect_s": connect_s,
        "delays": delays,
        "by_type": dict(by_type),
        "by_api": dict(by_api),
        "events": len(events),
        "expected": len(events) * args.subscribers,
        "short": sum(1 for i in range(args.subscribers) if counts[i] < len(events)),
        "lags": lags,
        "cpu": used,
        "to_redis": [(heard[e] - made[e]) * 1000 for e in events if e in heard],
        "redis_to_first": [(first[e] - heard[e]) * 1000 for e in events if e in heard],
        "redis_to_last": [(last[e] - heard[e]) * 1000 for e in events if e in heard],
    }


def stream_part(args: argparse.Namespace, log_dir: Path) -> dict[str, Any]:
    env = genway_env(args, str(log_dir))
    env["GENWAY_WORKER_CONCURRENCY"] = str(args.concurrency)
    prepare_database(env, args.pg_url)
    with processes() as started:
        apis = [serve(f"api{i}", env, log_dir, started) for i in (1, 2)]
        worker = [GENWAY, "worker", "--concurrency", str(args.concurrency)]
        started.append(Proc("stream-worker", worker, env, log_dir).start())
        pids: dict[str, int | None] = {"client": None}
        pids |= {name: p.pid for name, p in zip(("api1", "api2", "worker"), started, strict=True)}
        meter = CpuMeter(pids)
        org_id, key = create_org(env, "stream")
        channel = env["GENWAY_EVENTS_CHANNEL"]
        measure = stream_measure(apis, org_id, key, args, meter, channel)
        try:
            import uvloop  # the client is the instrument here: let it cost as little as can be
        except ImportError:
            return asyncio.run(measure)
        return uvloop.run(measure)


# --- main --------------------------------------------------------------------------------------


def raise_open_files(wanted: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = wanted if hard == resource.RLIM_INFINITY else min(wanted, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def ms(values: list[float], q: float) -> str:
    return f"{percentile(values, q):7.1f} ms"


def report_deliveries(r: dict[str, Any], args: argparse.Namespace) -> None:
    rates = r["rates"]
    print(
        f"webhooks: one `genway worker` (concurrency {args.concurrency}, "
        f"webhook_concurrency {args.webhook_concurrency}), "
        "PostgreSQL + Redis; receiver: uvicorn on 127.0.0.1, a process of its own"
    )
    print(f"  deliveries/s at the receiver, first to last receipt ({args.jobs} each)")
    rows = [
        ("genway drain (queued first, sender alone)", rates["drain"]),
        ("genway live (jobs run + delivered)", rates["live"]),
        ("baseline httpx loop, sequential", rates["sequential"]),
        (f"baseline httpx, {args.webhook_concurrency} concurrent", rates["concurrent"]),
    ]
    for label, value in rows:
        print(f"    {label:<44}{value:8.0f}/s")
    print(
        f"    live end to end (first job started -> last receipt) {rates['live_e2e']:.0f}/s; "
        f"the jobs alone (first started -> last finished) {rates['live_jobs']:.0f}/s"
    )
    print(
        f"  ratios: drain / sequential {rates['drain'] / rates['sequential']:.2f}, "
        f"drain / concurrent {rates['drain'] / rates['concurrent']:.2f}, "
        f"live / sequential {rates['live'] / rates['sequential']:.2f}, "
        f"live e2e / sequential {rates['live_e2e'] / rates['sequential']:.2f}  (goal >= 0.5)"
    )
    trickle, live = r["delay_trickle"], r["delay_live"]
    print(
        f"  delay finished_at -> receipt: trickle ({args.trickle} jobs at {args.trickle_rate:g}/s) "
        f"p50 {ms(trickle, 0.5)}, p99 {ms(trickle, 0.99)}; "
        f"live burst p50 {ms(live, 0.5)}, p99 {ms(live, 0.99)}"
    )
    print("  cores used (first to last receipt):")
    for phase in ("drain", "live", "sequential", "concurrent"):
        print(f"    {phase:<11} {cores(r['cpu_' + phase])}")
    print(
        f"  checks: {r['bad_signatures']} bad signatures, duplicates {r['duplicates']}, "
        f"live deliveries retried {r['retried']}, not succeeded {r['not_succeeded']}"
    )


def report_stream(r: dict[str, Any], args: argparse.Namespace) -> None:
    delays = r["delays"]
    print(
        f"org stream: {args.subscribers} WebSocket subscribers, half on each of 2 `genway serve`,"
        f" 1 `genway worker`; {args.stream_jobs} jobs at {args.stream_rate:g}/s "
        f"(connected in {r['connect_s']:.1f} s)"
    )
    print(
        f"  messages {len(delays)}/{r['expected']} ({r['events']} events x {args.subscribers}; "
        f"{r['short']} subscribers missed some)"
    )
    print(
        f"  delay created_at -> receipt: p50 {ms(delays, 0.5)}, p99 {ms(delays, 0.99)}, "
        f"max {max(delays):.1f} ms  (goal p99 <= 50 ms)"
    )
    for type_, values in sorted(r["by_type"].items()):
        print(f"    {type_:<16} p50 {ms(values, 0.5)}  p99 {ms(values, 0.99)}")
    for api, values in sorted(r["by_api"].items()):
        print(f"    api{api + 1:<13} p50 {ms(values, 0.5)}  p99 {ms(values, 0.99)}")
    print(f"  per event ({len(r['to_redis'])} heard on the Redis channel by this process too):")
    for label, values in (
        ("created_at -> on Redis", r["to_redis"]),
        ("on Redis -> first subscriber", r["redis_to_first"]),
        ("on Redis -> last subscriber", r["redis_to_last"]),
    ):
        print(f"    {label:<30} p50 {ms(values, 0.5)}  p99 {ms(values, 0.99)}")
    lags = r["lags"]
    print(f"  client event-loop lag (10 ms probe) p50 {ms(lags, 0.5)}, p99 {ms(lags, 0.99)}")
    print(f"  cores used while the jobs ran: {cores(r['cpu'])} (of {os.cpu_count()})")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--jobs", type=int, default=1000, help="deliveries per phase")
    parser.add_argument("--trickle", type=int, default=100, help="jobs of the delay trickle")
    parser.add_argument("--trickle-rate", type=float, default=20.0, help="its jobs per second")
    parser.add_argument("--concurrency", type=int, default=8, help="jobs at once in the worker")
    parser.add_argument(
        "--webhook-concurrency",
        type=int,
        default=32,
        help="the sender's deliveries at once (Genway's default), and the concurrent baseline's",
    )
    parser.add_argument("--subscribers", type=int, default=1000)
    parser.add_argument("--stream-jobs", type=int, default=30)
    parser.add_argument("--stream-rate", type=float, default=2.0, help="jobs per second")
    parser.add_argument("--parts", default="1,2", help="1: deliveries, 2: organization stream")
    parser.add_argument("--pg-url", default=DEFAULT_PG)
    parser.add_argument("--redis-url", default=DEFAULT_REDIS)
    parser.add_argument("--receiver", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.receiver is not None:
        run_receiver(args.receiver)
        return
    raise_open_files(4 * args.subscribers + 1024)  # inherited by the subprocesses
    parts = {p.strip() for p in args.parts.split(",")}
    pg = make_url(args.pg_url)
    redis = httpx.URL(args.redis_url)
    pg_up = reachable(pg.host or "127.0.0.1", pg.port or 5432)
    redis_up = reachable(redis.host or "127.0.0.1", redis.port or 6379)
    if not (pg_up and redis_up):
        down = [name for name, up in (("PostgreSQL", pg_up), ("Redis", redis_up)) if not up]
        print(f"skipped: {' and '.join(down)} not reachable; every part needs both")
        return
    with tempfile.TemporaryDirectory(prefix="genway-bench-webhooks-") as tmp:
        if "1" in parts:
            began = time.perf_counter()
            deliveries = asyncio.run(deliveries_part(args, Path(tmp)))
            print(f"  [deliveries done in {time.perf_counter() - began:.0f} s]", file=sys.stderr)
            report_deliveries(deliveries, args)
        if "2" in parts:
            began = time.perf_counter()
            stream = stream_part(args, Path(tmp))
            print(f"  [stream done in {time.perf_counter() - began:.0f} s]", file=sys.stderr)
            report_stream(stream, args)


if __name__ == "__main__":
    main()

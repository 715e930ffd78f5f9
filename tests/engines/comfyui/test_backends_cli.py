"""`genway backends`: every configured ComfyUI server with its state and queue length."""

from __future__ import annotations

import asyncio
import json
import os
import socket
import sys
from pathlib import Path

import pytest

from genway.engines.comfyui.cli import backends_command
from tests.engines.comfyui.conftest import invert_workflow, make_client, new_client_id
from tests.fakes.comfyui import FakeComfyUI

GENWAY = str(Path(sys.executable).with_name("genway"))


def unused_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def genway_backends(*args: str, urls: list[str]) -> tuple[int, str]:
    env = {**os.environ, "GENWAY_COMFYUI_URLS": ",".join(urls)}
    process = await asyncio.create_subprocess_exec(
        GENWAY, "backends", *args, env=env, stdout=asyncio.subprocess.PIPE
    )
    out, _ = await process.communicate()
    return process.returncode or 0, out.decode()


async def test_backends_lists_state_and_queue_length(
    fake: FakeComfyUI, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
):
    fake.pause()
    async with make_client(fake.base_url) as client:
        for _ in range(2):
            await client.submit(invert_workflow(), new_client_id())
    dead = f"http://127.0.0.1:{unused_port()}"
    code, out = await genway_backends("--json", urls=[fake.base_url, dead])
    assert code == 0
    live, gone = json.loads(out)
    assert live["url"] == fake.base_url and live["state"] == "healthy"
    assert live["queue_length"] == 2 and live["version"] == "0.3.64"
    assert (
        gone["url"] == dead and gone["state"] == "unhealthy" and "unavailable" in gone["last_error"]
    )
    monkeypatch.setenv("GENWAY_COMFYUI_URLS", f"{fake.base_url},{dead}")
    capsys.readouterr()
    await asyncio.to_thread(backends_command)  # the table, in a thread: it runs its own loop
    table = capsys.readouterr().out
    assert "healthy" in table and "unhealthy" in table and "0.3.64" in table

"""No network unless the project opted in; then the host's network is shared."""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

from genway.sandbox import SandboxLimits, run_sandboxed

pytestmark = pytest.mark.usefixtures("sandbox")

CONNECT = (
    'python3 -c \'import socket, sys; socket.create_connection(("127.0.0.1", int(sys.argv[1])), 2);'
    ' print("connected")\' {port}'
)


@pytest.fixture
def listening_port() -> Iterator[int]:
    with socket.socket() as server:
        server.bind(("127.0.0.1", 0))
        server.listen()
        yield server.getsockname()[1]


@pytest.mark.parametrize("port", ["listener", "5432"])
async def test_no_network_by_default(workdir: Path, listening_port: int, port: str) -> None:
    number = listening_port if port == "listener" else int(port)

    result = await run_sandboxed(CONNECT.format(port=number), workdir=workdir)

    assert result.exit_code != 0
    assert "connected" not in result.output


async def test_network_opt_in_shares_the_host_network(workdir: Path, listening_port: int) -> None:
    result = await run_sandboxed(
        CONNECT.format(port=listening_port),
        workdir=workdir,
        limits=SandboxLimits(network=True),
    )

    assert result.exit_code == 0, result.output
    assert result.output == "connected\n"

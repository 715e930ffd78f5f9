"""`genway backends`: each configured ComfyUI server with its state and queue length, checked
from this machine (GENWAY_COMFYUI_URLS) now."""

from __future__ import annotations

import asyncio
import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genway.config import Settings
from genway.engines.comfyui.runtime import check_backends
from genway.observability.logging import configure_logging


def backends_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Check every ComfyUI backend once: state, queue length, version, last error."""
    settings = Settings()
    configure_logging("ERROR", settings.log_json)  # the table says what failed; keep stdout clean
    snapshots = asyncio.run(check_backends(settings))
    if as_json:
        sys.stdout.write(json.dumps([s.as_dict() for s in snapshots]) + "\n")
        return
    table = Table(title="ComfyUI backends")
    for column in ("url", "state", "queue", "version", "last error"):
        table.add_column(column)
    for backend in snapshots:
        style = "green" if backend.state == "healthy" else "red"
        table.add_row(
            backend.url,
            f"[{style}]{backend.state}[/{style}]",
            str(backend.queue_length) if backend.state == "healthy" else "-",
            backend.version or "-",
            backend.last_error or "",
        )
    Console().print(table)

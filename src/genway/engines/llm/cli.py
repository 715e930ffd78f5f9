"""`genway models`: the routing table and which LLM providers are configured."""

from __future__ import annotations

import json
import sys
from typing import Annotated

import typer
from rich.console import Console
from rich.table import Table

from genway.config import Settings
from genway.engines.llm.router import RoutingError
from genway.engines.llm.runtime import describe_routes, provider_info


def models_command(
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Show each agent task's models in fallback order, and the configured providers."""
    settings = Settings()
    try:
        rows = describe_routes(settings)
    except (RoutingError, OSError) as exc:
        Console(stderr=True).print(f"[red]error:[/red] routing table: {exc}", highlight=False)
        raise typer.Exit(1) from None
    providers = provider_info(settings)
    if as_json:
        data = {
            "routing_file": str(settings.routing_file) if settings.routing_file else None,
            "providers": [
                {
                    "name": p.name,
                    "configured": p.configured,
                    "base_url": p.base_url,
                    "key": p.has_key,
                }
                for p in providers
            ],
            "routes": {row.task: list(row.models) for row in rows},
        }
        sys.stdout.write(json.dumps(data) + "\n")
        return
    console = Console()
    configured = {p.name for p in providers if p.configured}
    table = Table(title="Model routes (tried in order; ✗ = provider not configured)")
    table.add_column("task")
    table.add_column("models")
    for row in rows:
        shown = [m if m.partition(":")[0] in configured else f"{m} ✗" for m in row.models]
        table.add_row(row.task, ", ".join(shown))
    console.print(table)
    for info in providers:
        where = info.base_url or "default URL"
        state = f"configured ({where}, key {'set' if info.has_key else 'not set'})"
        console.print(f"{info.name}: {state if info.configured else 'not configured'}")
    source = settings.routing_file or "built-in defaults"
    console.print(f"routing table: {source}", highlight=False)

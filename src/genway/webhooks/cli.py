"""`genway webhooks listen`: forward an organization's events, signed like real deliveries, to
a local URL (as `stripe listen` does), so a receiver can be tested without a public address."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime
from typing import Annotated, Any

import httpx
import typer
import websockets
from rich.console import Console

from genway.config import Settings
from genway.kit import fastjson
from genway.webhooks.signing import new_secret, sign

webhooks_app = typer.Typer(help="Work with webhooks of a running Genway.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
DEFAULT_EVENTS = "job.queued,job.started,job.succeeded,job.failed,job.cancelled,webhook.*,quota.*"


@webhooks_app.command("listen")
def listen(
    forward_to: Annotated[
        str, typer.Option("--forward-to", help="Local URL that receives the signed POSTs")
    ],
    events: Annotated[
        str, typer.Option(help="Comma-separated event types or patterns (`job.*`)")
    ] = DEFAULT_EVENTS,
    org: Annotated[
        int | None, typer.Option(help="Organization id (default: the API key's)")
    ] = None,
    secret: Annotated[
        str | None, typer.Option(help="Signing secret `whsec_...` (default: a new one)")
    ] = None,
    max_events: Annotated[
        int | None, typer.Option(help="Stop after forwarding this many events")
    ] = None,
) -> None:
    """Subscribe to the organization's event stream (GENWAY_URL, GENWAY_API_KEY) and POST each
    event to FORWARD_TO as a webhook delivery would be: `{type, timestamp, data}` (the job as
    the API returns it), signed per Standard Webhooks."""
    settings = Settings()
    if settings.api_key is None:
        err.print("[red]error:[/red] set GENWAY_API_KEY to an API key", highlight=False)
        raise typer.Exit(1)
    secret = secret or new_secret()
    try:
        asyncio.run(
            _listen(settings, forward_to, events, org, secret, max_events),
        )
    except KeyboardInterrupt:
        pass


async def _listen(
    settings: Settings,
    forward_to: str,
    events: str,
    org: int | None,
    secret: str,
    max_events: int | None,
) -> None:
    assert settings.api_key is not None
    headers = {"Authorization": f"Bearer {settings.api_key.get_secret_value()}"}
    async with (
        httpx.AsyncClient(base_url=settings.url, headers=headers, timeout=30) as api,
        httpx.AsyncClient(timeout=10, follow_redirects=False) as local,
    ):
        org_id = org if org is not None else await _key_org(api)
        console.print(
            f"Ready! Forwarding organization {org_id}'s events to {forward_to}\n"
            f"Your webhook signing secret is [bold]{secret}[/bold] (Ctrl-C to quit)",
            highlight=False,
        )
        base = settings.url.replace("http://", "ws://", 1).replace("https://", "wss://", 1)
        after: str | None = None
        forwarded = 0
        while max_events is None or forwarded < max_events:
            query = f"?types={events}" + (f"&after={after}" if after else "")
            url = f"{base}/v1/organizations/{org_id}/events{query}"
            try:
                async with websockets.connect(url, additional_headers=headers) as stream:
                    async for raw in stream:
                        message = json.loads(raw)
                        if message.get("type") == "keepalive":
                            continue
                        after = message["id"]
                        await _forward(api, local, org_id, forward_to, secret, message)
                        forwarded += 1
                        if max_events is not None and forwarded >= max_events:
                            return
            except websockets.ConnectionClosed as exc:
                if exc.rcvd is not None and exc.rcvd.code >= 4000:
                    err.print(f"[red]error:[/red] {exc.rcvd.reason}", highlight=False)
                    raise typer.Exit(1) from None
            except OSError as exc:
                err.print(f"[yellow]stream lost ({exc}); reconnecting[/yellow]")
            await asyncio.sleep(1)


async def _key_org(api: httpx.AsyncClient) -> int:
    response = await api.get("/v1/organizations", params={"limit": 1})
    if response.status_code != 200 or not response.json().get("items"):
        err.print(f"[red]error:[/red] cannot find your organization: {response.text}")
        raise typer.Exit(1)
    return int(response.json()["items"][0]["id"])


async def _forward(
    api: httpx.AsyncClient,
    local: httpx.AsyncClient,
    org_id: int,
    forward_to: str,
    secret: str,
    message: dict[str, Any],
) -> None:
    data = message["data"]
    if message.get("job_id") is not None:
        job = await api.get(f"/v1/organizations/{org_id}/jobs/{message['job_id']}")
        if job.status_code == 200:
            data = job.json()
    body = fastjson.dumps_text(
        {"type": message["type"], "timestamp": message["created_at"], "data": data}
    )
    message_id = f"msg_listen{message['id'].replace('.', '_')}"
    now = datetime.now(UTC)
    headers = {
        "content-type": "application/json",
        "webhook-id": message_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": sign([secret], message_id, now, body),
    }
    try:
        response = await local.post(forward_to, content=body, headers=headers)
        outcome = f"[{response.status_code}]"
    except httpx.HTTPError as exc:
        outcome = f"[red]failed: {exc}[/red]"
    console.print(f"--> {message['type']} {outcome} POST {forward_to}", highlight=False)

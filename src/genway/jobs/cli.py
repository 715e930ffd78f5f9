"""`genway jobs ...`: a client of a running Genway (GENWAY_URL, GENWAY_API_KEY) over HTTP."""

from __future__ import annotations

import json
import sys
from typing import Annotated, Any

import httpx
import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TaskProgressColumn, TextColumn, TimeElapsedColumn
from rich.table import Table

from genway.config import Settings

jobs_app = typer.Typer(help="Submit and follow jobs on a running Genway.", no_args_is_help=True)
console = Console()
err = Console(stderr=True)
TERMINAL = {"succeeded", "failed", "cancelled"}


def _client() -> httpx.Client:
    settings = Settings()
    if settings.api_key is None:
        err.print("[red]error:[/red] set GENWAY_API_KEY to an API key", highlight=False)
        raise typer.Exit(1)
    return httpx.Client(
        base_url=settings.url,
        headers={"Authorization": f"Bearer {settings.api_key.get_secret_value()}"},
        timeout=httpx.Timeout(30, read=None),
    )


def _call(client: httpx.Client, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    try:
        response = client.request(method, path, **kwargs)
    except httpx.HTTPError as exc:
        err.print(f"[red]error:[/red] cannot reach Genway at {client.base_url}: {exc}")
        raise typer.Exit(1) from None
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail")
        except ValueError:
            detail = response.text
        err.print(f"[red]error:[/red] {response.status_code}: {detail}", highlight=False)
        raise typer.Exit(1)
    return dict(response.json())


@jobs_app.command("submit")
def submit(
    kind: Annotated[str, typer.Argument(help="Job kind, e.g. diagnostic.sleep")],
    input_json: Annotated[str, typer.Option("--input", help="Job input as JSON")] = "{}",
    priority: Annotated[int, typer.Option(help="Higher runs first")] = 0,
    timeout_s: Annotated[float | None, typer.Option("--timeout", help="Seconds")] = None,
    wait: Annotated[
        bool, typer.Option("--wait", help="Follow progress until the job ends")
    ] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Submit a job; with --wait, show live progress and exit non-zero unless it succeeds."""
    try:
        payload = json.loads(input_json)
    except json.JSONDecodeError as exc:
        err.print(f"[red]error:[/red] --input is not valid JSON: {exc}")
        raise typer.Exit(1) from None
    body: dict[str, Any] = {"kind": kind, "input": payload, "priority": priority}
    if timeout_s is not None:
        body["timeout_s"] = timeout_s
    with _client() as client:
        created = _call(client, "POST", "/api/v1/jobs", json=body)
        job = _call(client, "GET", f"/api/v1/jobs/{created['job_id']}")
        if not wait:
            _print_job(job, as_json)
            return
        final = _follow(client, job, quiet=as_json)
    _print_job(final, as_json)
    if final["status"] != "succeeded":
        raise typer.Exit(1)


def _follow(client: httpx.Client, job: dict[str, Any], *, quiet: bool) -> dict[str, Any]:
    path = f"/v1/organizations/{job['org_id']}/jobs/{job['id']}/events"
    columns = (
        TextColumn("job {task.fields[job_id]}"),
        BarColumn(),
        TaskProgressColumn(),
        TimeElapsedColumn(),
        TextColumn("{task.description}"),
    )
    with Progress(*columns, console=err, disable=quiet) as bar:
        task = bar.add_task(job["status"], total=1.0, job_id=job["id"])
        with client.stream("GET", path) as stream:
            for line in stream.iter_lines():
                if not line.startswith("data: "):
                    continue
                event = json.loads(line[6:])
                data = event["data"]
                if event["type"] == "progress":
                    bar.update(
                        task, completed=data["progress"], description=data.get("message") or ""
                    )
                elif event["type"] == "status":
                    bar.update(task, description=data["status"])
                    if data["status"] in TERMINAL:
                        break
                elif event["type"] == "log":
                    bar.console.print(data.get("text", ""), highlight=False)
    return _call(client, "GET", f"/api/v1/jobs/{job['id']}")


def _print_job(job: dict[str, Any], as_json: bool) -> None:
    if as_json:
        sys.stdout.write(json.dumps(job) + "\n")
        return
    table = Table(show_header=False, box=None)
    for key in ("id", "kind", "status", "progress", "attempts", "created_at", "finished_at"):
        table.add_row(key, str(job.get(key)))
    for key in ("queue_position", "estimated_start_at", "estimated_finish_at"):
        if job.get(key) is not None:
            table.add_row(key, str(job[key]))
    if job.get("result") is not None:
        table.add_row("result", json.dumps(job["result"]))
    if job.get("error") is not None:
        table.add_row("error", json.dumps(job["error"]))
    console.print(table)


@jobs_app.command("list")
def list_jobs(
    status: Annotated[str | None, typer.Option(help="Only jobs in this status")] = None,
    limit: Annotated[int, typer.Option(help="How many")] = 20,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """List your organization's jobs, newest first."""
    params: dict[str, Any] = {"limit": limit}
    if status:
        params["status"] = status
    with _client() as client:
        page = _call(client, "GET", "/api/v1/jobs", params=params)
    if as_json:
        sys.stdout.write(json.dumps(page) + "\n")
        return
    table = Table("id", "kind", "status", "progress", "created", "expected")
    for job in page["items"]:
        table.add_row(
            str(job["id"]),
            job["kind"],
            job["status"],
            f"{job['progress']:.0%}",
            job["created_at"],
            _expected(job),
        )
    console.print(table)


def _expected(job: dict[str, Any]) -> str:
    """A queued job's estimated start or a running job's estimated finish."""
    if job.get("estimated_start_at"):
        return f"starts ~{job['estimated_start_at']}"
    if job.get("estimated_finish_at"):
        return f"ends ~{job['estimated_finish_at']}"
    return ""


@jobs_app.command("show")
def show(
    job_id: int, as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False
) -> None:
    """Show one job."""
    with _client() as client:
        _print_job(_call(client, "GET", f"/api/v1/jobs/{job_id}"), as_json)


@jobs_app.command("cancel")
def cancel(
    job_id: int, as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False
) -> None:
    """Cancel a job (queued: at once; running: signalled)."""
    with _client() as client:
        job = _call(client, "DELETE", f"/api/v1/jobs/{job_id}")
    if not as_json:
        console.print(job["message"], highlight=False)
    _print_job(job, as_json)

"""The `genway` command: each subcommand is a thin call into a domain service."""

from __future__ import annotations

import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, TypeVar

import typer
from rich.console import Console

from genway.auth.permissions import Role
from genway.config import Settings
from genway.db import Database
from genway.engines.comfyui.cli import backends_command
from genway.engines.llm.cli import models_command
from genway.errors import GenwayError, NotFound
from genway.jobs.cli import jobs_app
from genway.migrate import UnknownRevision, migrate
from genway.orgs.models import Tier
from genway.projects.legacy import convert_legacy_projects
from genway.webhooks.cli import webhooks_app

app = typer.Typer(
    help="Genway: run long AI generation jobs for organizations.", no_args_is_help=True
)
orgs_app = typer.Typer(help="Manage organizations.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys.", no_args_is_help=True)
users_app = typer.Typer(help="Manage users.", no_args_is_help=True)
secrets_app = typer.Typer(help="Manage the keys of secrets stored encrypted.", no_args_is_help=True)
app.add_typer(orgs_app, name="orgs")
app.add_typer(keys_app, name="keys")
app.add_typer(users_app, name="users")
app.add_typer(secrets_app, name="secrets")
app.add_typer(jobs_app, name="jobs")
app.add_typer(webhooks_app, name="webhooks")
app.command("models")(models_command)
app.command("backends")(backends_command)

FIRST_RUN_FILE = "first-run-credentials.txt"
console = Console()
err_console = Console(stderr=True)
T = TypeVar("T")
# The migration that moved project files into git: from it on, old projects are converted.
PROJECT_GIT_REVISION = "0009"


def fail(message: str) -> typer.Exit:
    err_console.print(f"[red]error:[/red] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(1)


def checked(call: Callable[[], T]) -> T:
    """Call, turning domain errors into one clear line and exit code 1."""
    try:
        return call()
    except GenwayError as exc:
        raise fail(exc.detail) from None
    except UnknownRevision as exc:
        raise fail(str(exc)) from None
    except OSError as exc:
        raise fail(f"cannot reach the database: {exc}") from None


def require_email(email: str) -> None:
    """Exit with one clear line unless `email` is a syntactically valid address."""
    from genway.kit.email import check_email

    try:
        check_email(email)
    except ValueError as exc:
        raise fail(f"'{email}' is not a valid email address: {exc}") from None


def run(coro_factory: Callable[[], Awaitable[T]]) -> T:
    return checked(lambda: asyncio.run(coro_factory()))  # type: ignore[arg-type]


async def with_session(settings: Settings, work: Callable[[Any], Awaitable[T]]) -> T:
    settings.ensure_data_dir()
    database = Database(settings.resolved_database_url)
    try:
        async with database.transaction() as session:
            return await work(session)
    finally:
        await database.dispose()


def emit(data: dict[str, Any], as_json: bool, human: str) -> None:
    if as_json:
        sys.stdout.write(json.dumps(data) + "\n")
    else:
        console.print(human, highlight=False, soft_wrap=True)


@secrets_app.command("rotate")
def secrets_rotate(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Encrypt every stored secret again with the first key of GENWAY_ENCRYPTION_KEYS."""
    from genway.kit.rotation import rotate_all

    settings = Settings()
    report = run(lambda: with_session(settings, lambda s: rotate_all(s, settings.secret_box)))
    emit(
        {"rotated": report.rotated, "unreadable": report.unreadable},
        as_json,
        f"{report.rotated} secret(s) re-encrypted with the newest key",
    )
    if report.unreadable:
        raise fail("no configured key opens: " + ", ".join(report.unreadable) + " (left unchanged)")


@app.command("backup")
def backup_command(
    path: Annotated[Path, typer.Argument(help="The archive to write (.tar.gz)")],
    force: Annotated[bool, typer.Option(help="Overwrite an existing file")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Back an embedded (SQLite) Genway up while it runs: database, secret key, repositories,
    uploads and artifacts in one archive (readable by you only)."""
    from genway.backup import backup

    report = checked(lambda: backup(Settings(), path, force=force))
    emit(
        {"path": str(report.path), "files": report.files, "bytes": report.bytes},
        as_json,
        f"backed up {report.files} entries ({report.bytes} bytes, schema "
        f"{report.schema_revision}) to {report.path}",
    )


@app.command("restore")
def restore_command(
    path: Annotated[Path, typer.Argument(help="An archive made by `genway backup`")],
    force: Annotated[bool, typer.Option(help="Replace a database that holds data")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output")] = False,
) -> None:
    """Restore a backup into the configured data directory (stop Genway first)."""
    from genway.backup import restore

    report = checked(lambda: restore(Settings(), path, force=force))
    emit(
        {
            "path": str(report.path),
            "files": report.files,
            "schema_revision": report.schema_revision,
        },
        as_json,
        f"restored {report.files} entries from {report.path} (schema {report.schema_revision}); "
        "`genway serve` migrates it forward if needed",
    )


@app.command("migrate")
def migrate_command(
    revision: Annotated[str, typer.Option(help="Target revision: head, base or an id")] = "head",
) -> None:
    """Bring the database schema up (or down) to a revision."""
    settings = Settings()
    settings.ensure_data_dir()
    reached = run(lambda: migrate(settings.resolved_database_url, revision))
    console.print(f"database at revision {reached or 'base'}", highlight=False)
    if reached is not None and reached >= PROJECT_GIT_REVISION:
        converted = run(lambda: convert_legacy_projects(settings))
        if converted:
            console.print(f"{converted} project(s) moved into git repositories", highlight=False)


@app.command()
def serve(
    host: Annotated[str | None, typer.Option(help="Interface to bind")] = None,
    port: Annotated[int | None, typer.Option(help="Port to bind")] = None,
    auto_migrate: Annotated[bool, typer.Option("--migrate/--no-migrate")] = True,
) -> None:
    """Serve the API (and, by default, run an embedded worker)."""
    import uvicorn

    from genway.app import create_app
    from genway.orgs.bootstrap import bootstrap_if_empty

    settings = Settings()
    host = host or settings.host
    port = port or settings.port
    settings.ensure_data_dir()
    if auto_migrate:
        run(lambda: migrate(settings.resolved_database_url))
        run(lambda: convert_legacy_projects(settings))
    credentials = run(lambda: with_session(settings, bootstrap_if_empty))
    base = f"http://{host}:{port}"
    if credentials is not None and sys.stdout.isatty():
        console.print(
            f"\n[bold]Genway is set up.[/bold] Organization '{credentials.org_name}' "
            f"(id {credentials.org_id}) was created.\n"
            f"  owner login:  {credentials.email} / {credentials.password}\n"
            f"  owner API key (shown once, keep it): [bold]{credentials.api_key}[/bold]\n"
            f"  try: curl -H 'Authorization: Bearer {credentials.api_key}' {base}/v1/users/me\n",
            highlight=False,
            soft_wrap=True,
        )
    elif credentials is not None:
        # Output going to a file or a log collector: the secrets go to a file only this user reads.
        path = settings.data_dir / FIRST_RUN_FILE
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as handle:
            handle.write(
                f"organization: {credentials.org_name} (id {credentials.org_id})\n"
                f"owner login: {credentials.email} / {credentials.password}\n"
                f"owner API key: {credentials.api_key}\n"
            )
        console.print(
            f"Genway is set up: organization '{credentials.org_name}' (id {credentials.org_id}) "
            f"was created. The owner's login and API key are in {path.resolve()} (readable by "
            "you only); delete the file once you have them.",
            highlight=False,
            soft_wrap=True,
        )
    else:
        console.print(
            f"Genway on {base}. Log in at POST {base}/api/v1/auth/login, or make a key with "
            "`genway keys create --org ID --email EMAIL`.",
            highlight=False,
            soft_wrap=True,
        )
    sys.stdout.flush()  # the key must be visible even when output is piped to a file
    # Only configured proxies may set the client's address (`GENWAY_TRUSTED_PROXIES`, read by
    # Genway itself): uvicorn's own X-Forwarded-For handling would trust any local peer.
    uvicorn.run(
        create_app(settings, freeze_heap=True),
        host=host,
        port=port,
        log_level="warning",
        proxy_headers=False,
        timeout_keep_alive=settings.http_keep_alive_s,
    )


@orgs_app.command("create")
def orgs_create(
    name: Annotated[
        str, typer.Option(help="A display name (a slug is derived) or a lower-case slug")
    ],
    owner_email: Annotated[str, typer.Option(help="Owner's email; the user is created if new")],
    tier: Annotated[Tier, typer.Option(help="Tier")] = Tier.FREE,
    slug: Annotated[str | None, typer.Option(help="The unique slug, when you choose it")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create an organization with an owner and an owner API key."""
    from genway.keys.service import create_api_key
    from genway.orgs.service import create_organization, create_user, get_user_by_email, org_naming

    require_email(owner_email)

    async def work(session: Any) -> dict[str, Any]:
        unique, display_name = await org_naming(session, name, slug, None)
        owner = await get_user_by_email(session, owner_email) or await create_user(
            session, owner_email
        )
        org = await create_organization(
            session, unique, owner, tier=tier, display_name=display_name
        )
        _key, secret = await create_api_key(
            session, org_id=org.id, user_id=owner.id, maker_role=Role.OWNER, name="owner"
        )
        return {
            "organization_id": org.id,
            "name": org.name,
            "user_id": owner.id,
            "api_key": secret,
        }

    data = run(lambda: with_session(Settings(), work))
    emit(
        data,
        as_json,
        f"organization {data['organization_id']} ('{data['name']}') created; owner user "
        f"{data['user_id']}; API key (shown once): {data['api_key']}",
    )


@keys_app.command("create")
def keys_create(
    org: Annotated[int, typer.Option(help="Organization id")],
    email: Annotated[str, typer.Option(help="Email of a member of the organization")],
    role: Annotated[Role | None, typer.Option(help="Key role (at most the member's)")] = None,
    name: Annotated[str, typer.Option(help="A label for the key")] = "cli",
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create an API key for a member of an organization."""
    from genway.keys.service import create_api_key
    from genway.orgs.service import get_member, get_user_by_email

    async def work(session: Any) -> dict[str, Any]:
        user = await get_user_by_email(session, email)
        if user is None:
            raise NotFound(f"No user with email {email}")
        member = await get_member(session, org, user.id)
        key, secret = await create_api_key(
            session,
            org_id=org,
            user_id=user.id,
            maker_role=Role(member.membership.role),
            name=name,
            role=role,
        )
        return {"api_key": secret, "key_id": key.id}

    data = run(lambda: with_session(Settings(), work))
    emit(data, as_json, f"key {data['key_id']} created (shown once): {data['api_key']}")


@users_app.command("create")
def users_create(
    email: Annotated[str, typer.Option(help="Email address")],
    password_stdin: Annotated[
        bool, typer.Option("--password-stdin", help="Read the password from standard input")
    ] = False,
    platform_admin: Annotated[bool, typer.Option("--platform-admin")] = False,
    full_name: Annotated[str | None, typer.Option(help="Full name")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Create a user (optionally with a password read from stdin)."""
    from genway.auth.service import check_password_strength
    from genway.orgs.service import create_user

    require_email(email)
    settings = Settings()
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    if password is not None:
        checked(lambda: check_password_strength(password, settings))

    async def work(session: Any) -> dict[str, Any]:
        user = await create_user(
            session, email, password=password, full_name=full_name, platform_admin=platform_admin
        )
        return {"user_id": user.id, "email": user.email, "platform_admin": user.is_platform_admin}

    data = run(lambda: with_session(settings, work))
    emit(data, as_json, f"user {data['user_id']} ({data['email']}) created")


def main() -> None:
    app()


@app.command()
def worker(
    concurrency: Annotated[int | None, typer.Option(help="Jobs to run at once")] = None,
    kinds: Annotated[str | None, typer.Option(help="Comma-separated job kinds to take")] = None,
) -> None:
    """Run a standalone worker against the configured database until SIGTERM or Ctrl-C."""
    from genway.worker.process import run_worker_process

    kind_list = [k.strip() for k in kinds.split(",") if k.strip()] if kinds else None
    checked(lambda: run_worker_process(Settings(), concurrency, kind_list))

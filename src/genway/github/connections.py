"""An organization's GitHub connection: stored with its secret encrypted, checked against GitHub
when it is made, and turned into a client for everything else."""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.errors import Conflict
from genway.github.client import Credentials, GithubClient
from genway.github.models import GithubConnection
from genway.github.schemas import ConnectionCreate


class GithubNotConnected(Conflict):
    detail = "This organization has no GitHub connection"

    def __init__(self, detail: str | None = None) -> None:
        super().__init__(detail, extra={"code": "github_not_connected"})


async def get_connection(session: AsyncSession, org_id: int) -> GithubConnection | None:
    found: GithubConnection | None = await session.scalar(
        select(GithubConnection).where(GithubConnection.org_id == org_id)
    )
    return found


def client_of(settings: Settings, connection: GithubConnection) -> GithubClient:
    credentials = Credentials(
        kind=connection.kind,
        secret=settings.secret_box.decrypt(connection.secret),
        app_id=connection.app_id,
        installation_id=connection.installation_id,
    )
    return GithubClient(settings, credentials)


async def client_for(session: AsyncSession, settings: Settings, org_id: int) -> GithubClient:
    """The organization's client. Raises GithubNotConnected."""
    connection = await get_connection(session, org_id)
    if connection is None:
        raise GithubNotConnected(
            "Connect GitHub first: PUT /v1/organizations/{org_id}/github/connection".replace(
                "{org_id}", str(org_id)
            )
        )
    return client_of(settings, connection)


async def connect(
    session: AsyncSession,
    settings: Settings,
    org_id: int,
    user_id: int | None,
    body: ConnectionCreate,
) -> GithubConnection:
    """Make or replace the connection once GitHub accepts its credentials. Raises GithubError."""
    if body.token is not None:
        credentials = Credentials("token", body.token.get_secret_value())
    else:
        assert body.private_key is not None
        credentials = Credentials(
            "app",
            body.private_key.get_secret_value(),
            app_id=body.app_id,
            installation_id=body.installation_id,
        )
    account = await GithubClient(settings, credentials).account()
    connection = await get_connection(session, org_id)
    if connection is None:
        connection = GithubConnection(org_id=org_id)
        session.add(connection)
    connection.kind = credentials.kind
    connection.secret = settings.secret_box.encrypt(credentials.secret)
    connection.app_id = credentials.app_id
    connection.installation_id = credentials.installation_id
    connection.account = account
    connection.created_by = user_id
    await session.flush()
    await session.refresh(connection)
    return connection

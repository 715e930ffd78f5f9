"""Who calls the ComfyUI-compatible API, and in which organization.

Stock ComfyUI clients cannot all send Genway's headers: besides `Authorization: Bearer` and
`X-API-Key`, these routes accept the key as the password of HTTP Basic auth (any user name, as
for a ComfyUI behind a reverse proxy) and as `?token=` (the WebSocket and `/view` in browsers).
The organization is the key's own, or for a login the one in `X-Organization-Id` (default: the
first it joined), exactly as on Genway's other routes without an organization in the path.
"""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, cast

from fastapi import Depends, Header, Request
from starlette.requests import HTTPConnection

from genway.auth.deps import OrgContext, authenticate, caller_org_context
from genway.auth.permissions import Action
from genway.auth.principal import Principal
from genway.db import SessionDep
from genway.engines.comfyui.runtime import ComfyUIEngine
from genway.errors import GenwayError, Unauthorized
from genway.ratelimit.enforce import enforce_job_creation_limit, enforce_request_limits

CHALLENGE = {"WWW-Authenticate": 'Basic realm="Genway", charset="UTF-8"'}


class ComfyUnauthorized(GenwayError):
    """401 with a Basic challenge, so clients that wait for one (urllib, browsers) send it."""

    status_code = 401

    def __init__(self, detail: str) -> None:
        super().__init__(detail, headers=CHALLENGE)


def _basic_secret(value: str) -> str:
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        raise ComfyUnauthorized("Malformed Basic credentials") from None
    user, _, password = decoded.partition(":")
    # The key is the password; a client with a single "token" field may send it as the user.
    return (password or user).strip()


def compat_credential(connection: HTTPConnection) -> str | None:
    """The API key or token from X-API-Key, Authorization (Bearer or Basic) or `?token=`."""
    key = connection.headers.get("x-api-key")
    if key:
        return key.strip()
    authorization = connection.headers.get("authorization")
    if authorization:
        scheme, _, value = authorization.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
        if scheme.lower() == "basic" and value.strip():
            return _basic_secret(value) or None
        raise ComfyUnauthorized("Send 'Authorization: Bearer <key>' or Basic auth with the key")
    token = connection.query_params.get("token")
    return token.strip() if token else None


async def compat_principal(connection: HTTPConnection) -> Principal:
    """Raises ComfyUnauthorized, TooManyRequests."""
    try:
        principal = await authenticate(
            connection, compat_credential(connection), connection.app.state.settings
        )
    except Unauthorized as exc:
        raise ComfyUnauthorized(str(exc.detail)) from None
    await enforce_request_limits(connection, principal.key_org, principal.user_id)
    return principal


async def compat_org_context(
    connection: HTTPConnection,
    session: SessionDep,
    principal: Principal,
    organization_id: int | None,
    action: Action,
) -> OrgContext:
    """The caller's organization context, allowed to do `action`. Raises Forbidden, NotFound."""
    # caller_org_context only reads headers and state, which a WebSocket has as well.
    context = await caller_org_context(
        cast(Request, connection), session, principal, organization_id
    )
    context.require(action)
    if action is Action.CREATE_JOBS:
        await enforce_job_creation_limit(connection, context.org)
    return context


def comfy_require(action: Action) -> object:
    async def dependency(
        request: Request,
        session: SessionDep,
        principal: Annotated[Principal, Depends(compat_principal)],
        x_organization_id: Annotated[int | None, Header()] = None,
    ) -> OrgContext:
        return await compat_org_context(request, session, principal, x_organization_id, action)

    return Depends(dependency)


async def comfyui_engine(request: HTTPConnection) -> ComfyUIEngine:
    engine: ComfyUIEngine = request.app.state.comfyui
    return engine


ComfyReader = Annotated[OrgContext, comfy_require(Action.READ)]
ComfyCreator = Annotated[OrgContext, comfy_require(Action.CREATE_JOBS)]
ComfyCanceller = Annotated[OrgContext, comfy_require(Action.CANCEL_JOBS)]
EngineDep = Annotated[ComfyUIEngine, Depends(comfyui_engine)]

"""`POST /api/v1/webhooks/github` (seed 004's path): GitHub's deliveries for pinned projects."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Header, Request, Response, status

from genway.auth.deps import SettingsDep
from genway.db import SessionDep
from genway.github.intake import read_headers, receive
from genway.github.pins import WEBHOOK_PATH
from genway.github.schemas import DeliveryReceipt

router = APIRouter(tags=["github"])


@router.post(
    WEBHOOK_PATH,
    response_model=DeliveryReceipt,
    status_code=status.HTTP_202_ACCEPTED,
    responses={
        200: {"model": DeliveryReceipt, "description": "Received; nothing to do for it"},
    },
)
async def github_webhook(
    request: Request,
    response: Response,
    session: SessionDep,
    settings: SettingsDep,
    x_github_event: Annotated[str, Header(min_length=1, max_length=64)],
    x_github_delivery: Annotated[str, Header(min_length=1, max_length=64)],
    x_hub_signature_256: Annotated[
        str | None, Header(max_length=100, description="sha256=<hex HMAC of the body>")
    ] = None,
    x_github_hook_id: Annotated[str | None, Header(max_length=20)] = None,
    x_github_hook_installation_target_id: Annotated[str | None, Header(max_length=20)] = None,
) -> DeliveryReceipt:
    """Verify `X-Hub-Signature-256` against the pinned project's webhook secret, refuse a
    replayed `X-GitHub-Delivery`, record the delivery and queue its work (202), or answer 200
    when there is none. No credentials besides the signature."""
    headers = read_headers(request.headers.get)
    body = await request.body()
    outcome = await receive(session, settings, headers, body)
    if outcome.job_id is None:
        response.status_code = status.HTTP_200_OK
    return DeliveryReceipt(
        delivery_id=outcome.delivery_id,
        event=outcome.event,
        action=outcome.action,
        project_id=outcome.project_id,
        outcome=outcome.outcome,
        job_id=outcome.job_id,
        validation_id=outcome.validation_id,
    )

"""`/v1/organizations/{org_id}/webhooks`: endpoints (admins), their secrets, tests, delivery
logs and redeliveries; `.../webhooks/default/secret` signs per-job webhooks."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Query, Response, status

from genway.auth.deps import OrgContext, SettingsDep, require
from genway.auth.permissions import Action
from genway.db import SessionDep
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import MAX_ID
from genway.webhooks import service
from genway.webhooks.models import DeliveryStatus, WebhookAttempt, WebhookDelivery
from genway.webhooks.schemas import (
    SigningSecret,
    WebhookAttemptResponse,
    WebhookDeliveryPage,
    WebhookDeliveryResponse,
    WebhookEndpointCreate,
    WebhookEndpointResponse,
    WebhookEndpointUpdate,
    WebhookEndpointWithSecret,
)
from genway.webhooks.secrets import org_secret_row, rotate, signing_secrets

router = APIRouter(prefix="/v1/organizations/{org_id}/webhooks", tags=["webhooks"])

WebhookManager = Annotated[OrgContext, require(Action.MANAGE_WEBHOOKS)]
EndpointId = Annotated[int, Path(ge=1, le=MAX_ID, description="Webhook endpoint id")]
DeliveryId = Annotated[int, Path(ge=1, le=MAX_ID, description="Delivery id")]


def delivery_response(
    delivery: WebhookDelivery, attempts: list[WebhookAttempt] | None = None
) -> WebhookDeliveryResponse:
    response = WebhookDeliveryResponse.model_validate(delivery)
    if delivery.status != DeliveryStatus.PENDING:
        response.next_attempt_at = None
    response.attempt_log = [WebhookAttemptResponse.model_validate(a) for a in attempts or []]
    return response


@router.post("", response_model=WebhookEndpointWithSecret, status_code=status.HTTP_201_CREATED)
async def create_endpoint(
    body: WebhookEndpointCreate,
    response: Response,
    context: WebhookManager,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookEndpointWithSecret:
    """Add an endpoint. Its signing secret is in this answer only (rotate it to get a new one)."""
    endpoint, secret = await service.create_endpoint(
        session,
        settings.secret_box,
        settings.webhook_policy,
        context.org_id,
        context.user_id,
        body,
    )
    response.headers["Location"] = f"/v1/organizations/{context.org_id}/webhooks/{endpoint.id}"
    return WebhookEndpointWithSecret.model_validate(
        {**WebhookEndpointResponse.model_validate(endpoint).model_dump(), "secret": secret}
    )


@router.get("", response_model=Page[WebhookEndpointResponse])
async def list_endpoints(
    context: WebhookManager, session: SessionDep, page: PageDep
) -> Page[WebhookEndpointResponse]:
    endpoints, total = await service.list_endpoints(session, context.org_id, page)
    return Page.build([WebhookEndpointResponse.model_validate(e) for e in endpoints], total, page)


@router.get("/default/secret", response_model=SigningSecret)
async def get_default_secret(
    context: WebhookManager, session: SessionDep, settings: SettingsDep
) -> SigningSecret:
    """The secret that signs per-job webhooks (a job's `webhook` URL), created on first use."""
    row = await org_secret_row(session, settings.secret_box, context.org_id)
    return SigningSecret(
        secret=signing_secrets(settings.secret_box, row)[0],
        previous_secret_expires_at=row.previous_secret_expires_at,
    )


@router.post("/default/rotate-secret", response_model=SigningSecret)
async def rotate_default_secret(
    context: WebhookManager, session: SessionDep, settings: SettingsDep
) -> SigningSecret:
    """A new per-job signing secret; the previous one keeps signing beside it for 24 hours."""
    row = await org_secret_row(session, settings.secret_box, context.org_id)
    secret = rotate(settings.secret_box, row)
    await session.flush()
    return SigningSecret(secret=secret, previous_secret_expires_at=row.previous_secret_expires_at)


@router.get("/{endpoint_id}", response_model=WebhookEndpointResponse)
async def get_endpoint(
    endpoint_id: EndpointId, context: WebhookManager, session: SessionDep
) -> WebhookEndpointResponse:
    endpoint = await service.get_endpoint(session, context.org_id, endpoint_id)
    return WebhookEndpointResponse.model_validate(endpoint)


@router.patch("/{endpoint_id}", response_model=WebhookEndpointResponse)
async def update_endpoint(
    endpoint_id: EndpointId,
    body: WebhookEndpointUpdate,
    context: WebhookManager,
    session: SessionDep,
    settings: SettingsDep,
) -> WebhookEndpointResponse:
    endpoint = await service.get_endpoint(session, context.org_id, endpoint_id)
    await service.update_endpoint(session, settings.webhook_policy, endpoint, body)
    return WebhookEndpointResponse.model_validate(endpoint)


@router.delete("/{endpoint_id}", status_code=status.HTTP_204_NO_CONTENT)
async def delete_endpoint(
    endpoint_id: EndpointId, context: WebhookManager, session: SessionDep
) -> None:
    """Delete the endpoint with its delivery log; pending deliveries to it are dropped."""
    endpoint = await service.get_endpoint(session, context.org_id, endpoint_id)
    await service.delete_endpoint(session, endpoint)


@router.post("/{endpoint_id}/rotate-secret", response_model=SigningSecret)
async def rotate_secret(
    endpoint_id: EndpointId, context: WebhookManager, session: SessionDep, settings: SettingsDep
) -> SigningSecret:
    """A new signing secret, shown once; the previous one keeps signing beside it for 24 hours."""
    endpoint = await service.get_endpoint(session, context.org_id, endpoint_id)
    secret = rotate(settings.secret_box, endpoint)
    await session.flush()
    return SigningSecret(
        secret=secret, previous_secret_expires_at=endpoint.previous_secret_expires_at
    )


@router.post(
    "/{endpoint_id}/test",
    response_model=WebhookDeliveryResponse,
    status_code=status.HTTP_202_ACCEPTED,
)
async def test_endpoint(
    endpoint_id: EndpointId, context: WebhookManager, session: SessionDep
) -> WebhookDeliveryResponse:
    """Queue a signed `ping` to the endpoint (even a disabled one); its outcome is in the
    delivery log."""
    endpoint = await service.get_endpoint(session, context.org_id, endpoint_id)
    return delivery_response(await service.send_ping(session, endpoint))


@router.get("/{endpoint_id}/deliveries", response_model=WebhookDeliveryPage)
async def list_deliveries(
    endpoint_id: EndpointId,
    context: WebhookManager,
    session: SessionDep,
    status_: Annotated[DeliveryStatus | None, Query(alias="status")] = None,
    cursor: Annotated[int | None, Query(ge=1, le=MAX_ID, description="From `next_cursor`")] = None,
    limit: Annotated[int, Query(ge=1, le=100)] = 50,
) -> WebhookDeliveryPage:
    """Deliveries to the endpoint, newest first, each with every attempt (time, status code,
    latency, response excerpt, error)."""
    endpoint = await service.get_endpoint(session, context.org_id, endpoint_id)
    page, attempts, next_cursor = await service.list_deliveries(
        session, endpoint, status=status_, before=cursor, limit=limit
    )
    return WebhookDeliveryPage(
        items=[delivery_response(d, attempts[d.id]) for d in page],
        next_cursor=str(next_cursor) if next_cursor is not None else None,
    )


@router.get("/{endpoint_id}/deliveries/{delivery_id}", response_model=WebhookDeliveryResponse)
async def get_delivery(
    endpoint_id: EndpointId, delivery_id: DeliveryId, context: WebhookManager, session: SessionDep
) -> WebhookDeliveryResponse:
    endpoint = await service.get_endpoint(session, context.org_id, endpoint_id)
    delivery = await service.get_delivery(session, endpoint, delivery_id)
    _page, attempts, _ = await service.list_deliveries(
        session, endpoint, status=None, before=delivery.id + 1, limit=1
    )
    return delivery_response(delivery, attempts.get(delivery.id))


@router.post(
    "/{endpoint_id}/deliveries/{delivery_id}/redeliver",
    response_model=WebhookDeliveryResponse,
    status_code=status.HTTP_202_ACCEPTED,
)
async def redeliver(
    endpoint_id: EndpointId, delivery_id: DeliveryId, context: WebhookManager, session: SessionDep
) -> WebhookDeliveryResponse:
    """Send the same message again (same `webhook-id`) as a new delivery."""
    endpoint = await service.get_endpoint(session, context.org_id, endpoint_id)
    delivery = await service.get_delivery(session, endpoint, delivery_id)
    return delivery_response(await service.redeliver(session, endpoint, delivery))

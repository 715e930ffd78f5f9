"""An organization's webhook endpoints: create, read, change, delete, rotate the secret, send a
test, list deliveries with their attempts, redeliver."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from typing import Any

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import on_commit, utcnow
from genway.errors import InvalidInput, NotFound
from genway.kit.crypto import SecretBox
from genway.kit.pagination import PageParams, paginate
from genway.notifications.service import notify_org_admins
from genway.orgevents.emit import emit
from genway.orgevents.types import ENDPOINT_DISABLED, PING, WEBHOOK_EVENT_TYPES, unknown_patterns
from genway.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from genway.webhooks.schemas import (
    WebhookEndpointCreate,
    WebhookEndpointResponse,
    WebhookEndpointUpdate,
)
from genway.webhooks.signing import new_secret
from genway.webhooks.targets import TargetPolicy, check_target


class EndpointNotFound(NotFound):
    detail = "Webhook endpoint not found"


class DeliveryNotFound(NotFound):
    detail = "Delivery not found"


def check_event_types(patterns: list[str]) -> list[str]:
    """Raises InvalidInput naming patterns that match no event type."""
    unknown = unknown_patterns(patterns, WEBHOOK_EVENT_TYPES)
    if unknown:
        raise InvalidInput(
            f"Unknown event types: {', '.join(unknown)}; known: {', '.join(WEBHOOK_EVENT_TYPES)}"
        )
    return list(dict.fromkeys(patterns))


def org_endpoints(org_id: int) -> Select[WebhookEndpoint]:
    query: Select[WebhookEndpoint] = select(WebhookEndpoint).where(WebhookEndpoint.org_id == org_id)
    return query


async def create_endpoint(
    session: AsyncSession,
    box: SecretBox,
    policy: TargetPolicy,
    org_id: int,
    user_id: int | None,
    body: WebhookEndpointCreate,
) -> tuple[WebhookEndpoint, str]:
    """Returns the endpoint and its signing secret in clear (shown once)."""
    await check_target(body.url, policy)
    secret = new_secret()
    endpoint = WebhookEndpoint(
        org_id=org_id,
        url=body.url,
        event_types=check_event_types(body.event_types),
        description=body.description,
        enabled=body.enabled,
        secret=box.encrypt(secret),
        created_by=user_id,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def list_endpoints(
    session: AsyncSession, org_id: int, page: PageParams
) -> tuple[Sequence[WebhookEndpoint], int]:
    return await paginate(session, org_endpoints(org_id).order_by(WebhookEndpoint.id), page)


async def get_endpoint(session: AsyncSession, org_id: int, endpoint_id: int) -> WebhookEndpoint:
    endpoint = await session.scalar(org_endpoints(org_id).where(WebhookEndpoint.id == endpoint_id))
    if endpoint is None:
        raise EndpointNotFound(f"Webhook endpoint {endpoint_id} not found")
    return endpoint


async def update_endpoint(
    session: AsyncSession,
    policy: TargetPolicy,
    endpoint: WebhookEndpoint,
    body: WebhookEndpointUpdate,
) -> WebhookEndpoint:
    changes = body.model_dump(exclude_unset=True)
    for field in ("url", "event_types", "enabled"):
        if field in changes and changes[field] is None:
            raise InvalidInput(f"'{field}' cannot be null")
    if "url" in changes:
        await check_target(changes["url"], policy)
    if "event_types" in changes:
        changes["event_types"] = check_event_types(changes["event_types"])
    if changes.get("enabled"):
        endpoint.disabled_reason = None
    for field, value in changes.items():
        if value is not None:
            setattr(endpoint, field, value)
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    await session.delete(endpoint)
    await session.flush()


def queue_delivery(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    event_type: str,
    payload: dict[str, Any],
    message_id: str,
) -> WebhookDelivery:
    """A delivery to one endpoint outside the event flow (a ping, a redelivery)."""
    now = utcnow()
    delivery = WebhookDelivery(
        org_id=endpoint.org_id,
        endpoint_id=endpoint.id,
        message_id=message_id,
        event_type=event_type,
        payload=payload,
        status=DeliveryStatus.PENDING,
        attempts=0,
        next_attempt_at=now,
        created_at=now,
    )
    session.add(delivery)
    on_commit(session, deliveries=True)
    return delivery


async def send_ping(session: AsyncSession, endpoint: WebhookEndpoint) -> WebhookDelivery:
    now = utcnow()
    payload = {
        "type": PING,
        "timestamp": now.isoformat().replace("+00:00", "Z"),
        "data": {"endpoint_id": endpoint.id, "message": "Genway webhook test"},
    }
    delivery = queue_delivery(session, endpoint, PING, payload, f"msg_ping{uuid.uuid4().hex}")
    await session.flush()
    return delivery


async def list_deliveries(
    session: AsyncSession,
    endpoint: WebhookEndpoint,
    *,
    status: DeliveryStatus | None,
    before: int | None,
    limit: int,
) -> tuple[Sequence[WebhookDelivery], dict[int, list[WebhookAttempt]], int | None]:
    """Newest first, with their attempts; the last value is the cursor of the next page."""
    query = (
        select(WebhookDelivery)
        .where(
            WebhookDelivery.org_id == endpoint.org_id,
            WebhookDelivery.endpoint_id == endpoint.id,
        )
        .order_by(WebhookDelivery.id.desc())
        .limit(limit + 1)
    )
    if status is not None:
        query = query.where(WebhookDelivery.status == status)
    if before is not None:
        query = query.where(WebhookDelivery.id < before)
    rows = (await session.scalars(query)).all()
    page = rows[:limit]
    attempts: dict[int, list[WebhookAttempt]] = {row.id: [] for row in page}
    if page:
        for attempt in await session.scalars(
            select(WebhookAttempt)
            .where(WebhookAttempt.delivery_id.in_(attempts))
            .order_by(WebhookAttempt.id)
        ):
            attempts[attempt.delivery_id].append(attempt)
    return page, attempts, page[-1].id if len(rows) > limit else None


async def get_delivery(
    session: AsyncSession, endpoint: WebhookEndpoint, delivery_id: int
) -> WebhookDelivery:
    delivery = await session.scalar(
        select(WebhookDelivery).where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.org_id == endpoint.org_id,
            WebhookDelivery.endpoint_id == endpoint.id,
        )
    )
    if delivery is None:
        raise DeliveryNotFound(f"Delivery {delivery_id} not found")
    return delivery


async def redeliver(
    session: AsyncSession, endpoint: WebhookEndpoint, delivery: WebhookDelivery
) -> WebhookDelivery:
    """The same message (same `webhook-id`, so receivers can tell) queued again now."""
    copy = queue_delivery(
        session, endpoint, delivery.event_type, delivery.payload, delivery.message_id
    )
    copy.job_id = delivery.job_id
    await session.flush()
    return copy


async def endpoint_disabled(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    """Tell the organization (stream, other endpoints) and its admins."""
    data = WebhookEndpointResponse.model_validate(endpoint).model_dump(mode="json")
    await emit(session, endpoint.org_id, ENDPOINT_DISABLED, data)
    await notify_org_admins(
        session,
        endpoint.org_id,
        "webhook_disabled",
        "A webhook endpoint was disabled",
        f"Deliveries to {endpoint.url} failed for a whole day of retries, so the endpoint was "
        "disabled. Fix the receiver, then enable the endpoint again.",
        data,
    )

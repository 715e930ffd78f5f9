"""Webhook endpoints, their deliveries and attempts, as the API takes and returns them."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from genway.kit.schemas import RequestModel, ResponseModel
from genway.orgevents.types import WEBHOOK_EVENT_TYPES

EVENT_TYPES_DOC = (
    "Event types to receive; `*` is a wildcard (`job.*`, `*`). Known types: "
    + ", ".join(WEBHOOK_EVENT_TYPES)
)
EventPattern = Field(min_length=1, max_length=64, pattern=r"^[a-z.*_]+$")


class WebhookEndpointCreate(RequestModel):
    url: str = Field(min_length=1, max_length=2048, examples=["https://example.com/hooks"])
    event_types: list[str] = Field(
        default_factory=lambda: ["*"], min_length=1, max_length=50, description=EVENT_TYPES_DOC
    )
    description: str = Field(default="", max_length=500)
    enabled: bool = True


class WebhookEndpointUpdate(RequestModel):
    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[str] | None = Field(
        default=None, min_length=1, max_length=50, description=EVENT_TYPES_DOC
    )
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = Field(
        default=None, description="Re-enabling an endpoint disabled after failures clears that"
    )


class WebhookEndpointResponse(ResponseModel):
    id: int
    org_id: int
    url: str
    event_types: list[str]
    description: str
    enabled: bool
    disabled_reason: str | None
    created_by: int | None
    created_at: datetime
    updated_at: datetime


class WebhookEndpointWithSecret(WebhookEndpointResponse):
    secret: str = Field(description="The signing secret (`whsec_...`); shown only this once")


class SigningSecret(ResponseModel):
    secret: str = Field(
        description="`whsec_...`: verify deliveries with a Standard Webhooks library"
    )
    previous_secret_expires_at: datetime | None = Field(
        default=None, description="Until then the previous secret signs deliveries too"
    )


class WebhookAttemptResponse(ResponseModel):
    id: int
    attempted_at: datetime
    status_code: int | None
    latency_ms: int
    response_excerpt: str | None
    error: str | None


class WebhookDeliveryResponse(ResponseModel):
    id: int
    endpoint_id: int | None
    job_id: int | None
    message_id: str = Field(description="The `webhook-id` header, the same on every attempt")
    event_type: str
    status: str = Field(description="pending, succeeded or failed")
    attempts: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    created_at: datetime
    finished_at: datetime | None
    payload: dict[str, Any]
    attempt_log: list[WebhookAttemptResponse] = Field(
        default_factory=list, description="Every attempt, oldest first"
    )


class WebhookDeliveryPage(ResponseModel):
    items: list[WebhookDeliveryResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next (older) page")

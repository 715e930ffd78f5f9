"""Notification and preference shapes; a notification as the API returns it is also the `data`
of its `notification.new` event."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, computed_field, model_validator

from genway.kit.schemas import RequestModel, ResponseModel
from genway.notifications.models import NotificationKind


class NotificationResponse(ResponseModel):
    id: int
    org_id: int
    kind: NotificationKind
    title: str
    body: str
    data: dict[str, Any]
    read_at: datetime | None
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def read(self) -> bool:
        return self.read_at is not None


class NotificationPage(ResponseModel):
    items: list[NotificationResponse]
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page")
    unread_count: int = Field(description="Unread notifications in all (within the filter)")


class ReadAllResponse(ResponseModel):
    marked: int = Field(description="Notifications that were unread and are now read")


_EMAIL = "Email for "


class NotificationPreferences(RequestModel):
    """Every preference; as a PUT body, omitted fields take their defaults."""

    email_quota: bool = Field(default=True, description=_EMAIL + "quota at 80 % and 100 %")
    email_key_expiring: bool = Field(
        default=True, description=_EMAIL + "an API key of yours expiring within 7 days"
    )
    email_webhook_disabled: bool = Field(
        default=True, description=_EMAIL + "a webhook endpoint disabled (admins)"
    )
    email_job_failed: bool = Field(default=False, description=_EMAIL + "a job of yours failed")
    in_app_job_failed: bool = Field(
        default=False, description="In-app notification when a job of yours failed"
    )


class NotificationPreferencesUpdate(RequestModel):
    """The preferences to change; the others stay as they are."""

    email_quota: bool | None = None
    email_key_expiring: bool | None = None
    email_webhook_disabled: bool | None = None
    email_job_failed: bool | None = None
    in_app_job_failed: bool | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> NotificationPreferencesUpdate:
        nulls = sorted(name for name in self.model_fields_set if getattr(self, name) is None)
        if nulls:
            raise ValueError(f"must be true or false, not null: {', '.join(nulls)}")
        return self

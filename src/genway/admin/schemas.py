"""Admin views of organizations and users, and the changes admins may make."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field, field_validator

from genway.kit.schemas import RequestModel, ResponseModel
from genway.orgs.models import OrgStatus, Tier
from genway.ratelimit.tiers import OVERRIDABLE


class AdminUser(ResponseModel):
    id: int
    email: str
    full_name: str | None
    is_active: bool
    is_platform_admin: bool
    created_at: datetime


class AdminOrg(ResponseModel):
    id: int
    name: str
    display_name: str
    status: str
    tier: str
    overrides: dict[str, Any]
    limits: dict[str, Any] = Field(description="Effective limits: tier plus overrides")
    created_at: datetime


class AdminOrgUpdate(RequestModel):
    tier: Tier | None = None
    status: OrgStatus | None = None
    overrides: dict[str, int | None] | None = Field(
        default=None,
        description="Per-organization limits; a null value removes that override",
    )

    @field_validator("overrides")
    @classmethod
    def known_limits(cls, value: dict[str, int | None] | None) -> dict[str, int | None] | None:
        for key, amount in (value or {}).items():
            if key not in OVERRIDABLE:
                raise ValueError(f"unknown limit '{key}'; known: {', '.join(OVERRIDABLE)}")
            if amount is not None and amount < 0:
                raise ValueError(f"'{key}' must be >= 0")
        return value


class AdminUserUpdate(RequestModel):
    is_active: bool | None = None
    is_platform_admin: bool | None = None

"""API key requests and responses; the secret appears only in the creation response."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from genway.auth.permissions import Role
from genway.kit.schemas import RequestModel, ResponseModel


class APIKeyCreate(RequestModel):
    name: str = Field(default="default", min_length=1, max_length=100)
    role: Role | None = Field(default=None, description="Defaults to the maker's role")
    expires_in_days: int | None = Field(default=None, ge=1, le=3650)


class APIKeyResponse(ResponseModel):
    id: int
    org_id: int
    user_id: int
    name: str
    prefix: str
    role: Role
    created_at: datetime
    last_used_at: datetime | None
    expires_at: datetime | None
    revoked_at: datetime | None


class APIKeyCreated(APIKeyResponse):
    api_key: str = Field(description="The secret; shown only once")

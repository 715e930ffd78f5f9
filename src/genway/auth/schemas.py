"""Login, registration and token shapes."""

from __future__ import annotations

from pydantic import Field

from genway.auth.permissions import Role
from genway.kit.email import EmailAddress
from genway.kit.schemas import RequestModel, ResponseModel
from genway.orgs.schemas import UserResponse


class RegisterRequest(RequestModel):
    email: EmailAddress
    password: str = Field(max_length=1024)
    full_name: str | None = Field(default=None, max_length=200)


class LoginRequest(RequestModel):
    email: str = Field(min_length=1, max_length=320)
    password: str = Field(max_length=1024)


class RefreshRequest(RequestModel):
    refresh_token: str = Field(min_length=1, max_length=512)


class LogoutRequest(RequestModel):
    refresh_token: str | None = Field(default=None, max_length=512)


class TokenResponse(ResponseModel):
    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int


class MembershipSummary(ResponseModel):
    org_id: int
    org_name: str
    role: Role


class MeResponse(UserResponse):
    organizations: list[MembershipSummary]
    auth_method: str
    org_id: int | None = Field(default=None, description="The API key's organization, if any")

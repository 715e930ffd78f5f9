"""Request and response shapes for organizations, users and members (Codegen-compatible)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field

from genway.auth.permissions import Role
from genway.kit.email import EmailAddress
from genway.kit.schemas import RequestModel, ResponseModel
from genway.orgs.models import Tier

ORG_NAME_PATTERN = r"^[a-z0-9][a-z0-9-]{0,98}[a-z0-9]$|^[a-z0-9]$"


class UserResponse(ResponseModel):
    id: int
    email: str | None
    github_user_id: str
    github_username: str
    avatar_url: str | None
    full_name: str | None
    is_platform_admin: bool = False
    created_at: datetime


class OrganizationSettings(ResponseModel):
    enable_pr_creation: bool = True
    enable_rules_detection: bool = True


class OrganizationResponse(ResponseModel):
    id: int
    name: str
    display_name: str
    status: str
    tier: str
    settings: OrganizationSettings
    created_at: datetime


class OrganizationCreate(RequestModel):
    name: str = Field(
        min_length=1,
        max_length=200,
        description="A display name (`Acme Inc`; a unique slug is derived from it) or a "
        "lower-case slug (`acme`, used as is)",
    )
    slug: str | None = Field(
        default=None, pattern=ORG_NAME_PATTERN, description="The unique slug, when you choose it"
    )
    display_name: str | None = Field(default=None, min_length=1, max_length=200)


class OrganizationSettingsUpdate(RequestModel):
    enable_pr_creation: bool | None = None
    enable_rules_detection: bool | None = None


class OrganizationUpdate(RequestModel):
    display_name: str | None = Field(default=None, min_length=1, max_length=200)
    tier: Tier | None = None
    settings: OrganizationSettingsUpdate | None = None


class MemberResponse(ResponseModel):
    user_id: int
    email: str
    full_name: str | None
    role: Role
    joined_at: datetime


class MemberUpdate(RequestModel):
    role: Role


class InvitationCreate(RequestModel):
    email: EmailAddress
    role: Role = Role.MEMBER


class InvitationResponse(ResponseModel):
    id: int
    org_id: int
    organization: str = Field(description="The organization's display name")
    email: str
    role: Role
    status: str
    created_at: datetime
    expires_at: datetime

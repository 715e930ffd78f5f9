"""GitHub connection, pin, delivery and pull request requests and answers."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr, model_validator

from genway.kit.schemas import RequestModel, ResponseModel
from genway.projects.pipeline import MergeMethod


class ConnectionCreate(RequestModel):
    """Either a `token` (a fine-grained personal access token), or a GitHub App: `app_id`,
    `private_key` (PEM) and the `installation_id` on the account whose repositories it
    reaches. Checked against GitHub before it is kept; secrets are never shown again."""

    token: SecretStr | None = Field(default=None, min_length=1, max_length=500)
    app_id: int | None = Field(default=None, ge=1, le=2**53)
    private_key: SecretStr | None = Field(default=None, min_length=1, max_length=20_000)
    installation_id: int | None = Field(default=None, ge=1, le=2**53)

    @model_validator(mode="after")
    def _one_kind(self) -> ConnectionCreate:
        app = (self.app_id, self.private_key, self.installation_id)
        if self.token is not None and any(v is not None for v in app):
            raise ValueError("send either 'token' or the App's fields, not both")
        if self.token is None and any(v is None for v in app):
            raise ValueError(
                "send 'token', or 'app_id', 'private_key' and 'installation_id' together"
            )
        return self


class ConnectionResponse(ResponseModel):
    kind: str = Field(description="token | app")
    account: str = Field(description="The token's user, or the account the App is installed on")
    app_id: int | None
    installation_id: int | None
    created_at: datetime
    updated_at: datetime


class RepositorySummary(ResponseModel):
    id: int
    full_name: str
    private: bool
    default_branch: str | None
    html_url: str | None
    description: str | None


class RepositoryPage(ResponseModel):
    items: list[RepositorySummary]
    page: int
    per_page: int
    has_more: bool


class PinRequest(RequestModel):
    repository: str = Field(
        min_length=3,
        max_length=200,
        pattern=r"^[A-Za-z0-9](?:[A-Za-z0-9-]{0,38})/[A-Za-z0-9._-]{1,100}$",
        description="owner/name",
    )
    merge_method: MergeMethod | None = None


class PinResponse(ResponseModel):
    project_id: int
    repository: str
    repository_id: int | None
    default_branch: str | None
    hook_id: int | None
    webhook_url: str | None


class DeliveryResponse(ResponseModel):
    id: int
    delivery_id: str
    project_id: int | None
    event: str
    action: str | None
    outcome: str
    job_id: int | None
    received_at: datetime


class PullRequestResponse(ResponseModel):
    id: int
    project_id: int
    number: int
    title: str
    url: str
    head_branch: str
    head_sha: str
    base_branch: str
    state: str
    agent_run_id: int | None
    fix_attempts: int
    created_at: datetime
    updated_at: datetime


class DeliveryReceipt(ResponseModel):
    delivery_id: str
    event: str
    action: str | None
    project_id: int
    outcome: str = Field(
        description="What Genway did: validation_queued, fix_run_queued, pull_request_closed, "
        "pull_request_merged, pull_request_updated, pong, ignored, ..."
    )
    job_id: int | None
    validation_id: int | None

"""Seed 004's ValidationState as the API shows it."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import Field

from genway.kit.schemas import ResponseModel


class ValidationResponse(ResponseModel):
    id: int
    organization_id: int = Field(validation_alias="org_id")
    project_id: int
    agent_run_id: int | None = Field(description="The agent run whose pull request this is")
    pr_number: int
    head_sha: str
    job_id: int | None = Field(description="The validation.run job (its events stream the logs)")
    status: str = Field(description="queued | running | passed | failed | error | cancelled")
    snapshot_id: str | None
    deployment_status: str = Field(description="pending | success | failed | skipped (no setup)")
    test_results: dict[str, Any] = Field(
        description="passed, commands (phase, command, exit_code, passed, output_tail, ...), "
        "tests (JUnit counts and failures), lint (findings), notes"
    )
    auto_merge_eligible: bool
    merged: bool
    fix_run_id: int | None = Field(description="The agent run queued to fix a failure")
    error: str | None
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None

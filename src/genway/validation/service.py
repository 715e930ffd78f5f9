"""Validations: queued (a row and its `validation.run` job, in one transaction), read, listed,
retried; and the follow-up agent run that gets a failure's output."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import Select, select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.config import Settings
from genway.errors import NotFound
from genway.github.models import PullRequest
from genway.jobs.schemas import JobCreate
from genway.jobs.service import Submitter, create_job
from genway.kit.pagination import PageParams, paginate
from genway.projects.models import Project
from genway.validation.models import Validation, ValidationStatus

VALIDATION_RUN = "validation.run"


class ValidationNotFound(NotFound):
    detail = "Validation not found"


def org_validations(org_id: int) -> Select[Validation]:
    """Every query for an organization's validations starts here."""
    return select(Validation).where(Validation.org_id == org_id)


def project_submitter(project: Project) -> Submitter:
    """Work GitHub starts is submitted on behalf of whoever pinned the project."""
    return Submitter(project.org_id, project.github_pinned_by or project.created_by, None)


async def queue_validation(
    session: AsyncSession, settings: Settings, project: Project, pull: PullRequest
) -> Validation:
    """A validation of the pull request's head, and its job, in the caller's transaction."""
    validation = Validation(
        org_id=project.org_id,
        project_id=project.id,
        pull_request_id=pull.id,
        pr_number=pull.number,
        agent_run_id=pull.agent_run_id,
        head_sha=pull.head_sha,
        status=ValidationStatus.QUEUED,
        deployment_status="pending",
        test_results={},
    )
    session.add(validation)
    await session.flush()
    spec = JobCreate(
        kind=VALIDATION_RUN,
        input={"validation_id": validation.id},
        project_id=project.id,
        timeout_s=settings.validation_timeout_s,
    )
    job, _created = await create_job(
        session,
        project_submitter(project),
        spec,
        max_input_bytes=settings.job_input_max_bytes,
    )
    validation.job_id = job.id
    await session.flush()
    return validation


async def get_validation(session: AsyncSession, org_id: int, validation_id: int) -> Validation:
    found = await session.scalar(org_validations(org_id).where(Validation.id == validation_id))
    if found is None:
        raise ValidationNotFound(f"Validation {validation_id} not found")
    return found


async def list_validations(
    session: AsyncSession,
    org_id: int,
    params: PageParams,
    *,
    project_id: int | None = None,
    pr_number: int | None = None,
    status: ValidationStatus | None = None,
) -> tuple[Sequence[Validation], int]:
    query = org_validations(org_id)
    if project_id is not None:
        query = query.where(Validation.project_id == project_id)
    if pr_number is not None:
        query = query.where(Validation.pr_number == pr_number)
    if status is not None:
        query = query.where(Validation.status == status)
    rows, total = await paginate(session, query.order_by(Validation.id.desc()), params)
    return list(rows), total


async def retry_validation(
    session: AsyncSession, settings: Settings, org_id: int, validation_id: int
) -> Validation:
    """A new validation of the same pull request's current head. Raises ValidationNotFound."""
    earlier = await get_validation(session, org_id, validation_id)
    project = await session.get(Project, earlier.project_id)
    pull = await session.get(PullRequest, earlier.pull_request_id)
    if project is None or pull is None or project.org_id != org_id:
        raise ValidationNotFound(f"Validation {validation_id} not found")
    return await queue_validation(session, settings, project, pull)

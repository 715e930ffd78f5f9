"""Validations: seed 004's `GET /api/v1/validation/{id}` and `POST .../retry` (the caller's
organization), and the canonical `/v1/organizations/{org_id}/validations[/{id}[/retry]]`."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, status

from genway.auth.deps import CallerOrgReader, OrgContext, OrgReader, SettingsDep, require
from genway.auth.permissions import Action
from genway.db import SessionDep
from genway.kit.pagination import Page, PageDep
from genway.kit.schemas import Id
from genway.validation import service
from genway.validation.models import ValidationStatus
from genway.validation.schemas import ValidationResponse

router = APIRouter(prefix="/v1/organizations/{org_id}/validations", tags=["validations"])
legacy_router = APIRouter(prefix="/api/v1/validation", tags=["validations"])
Retrier = Annotated[OrgContext, require(Action.CREATE_JOBS)]
CallerRetrier = Annotated[OrgContext, require(Action.CREATE_JOBS, scope="caller")]


@router.get("", response_model=Page[ValidationResponse])
async def list_validations(
    context: OrgReader,
    session: SessionDep,
    params: PageDep,
    project_id: Annotated[Id | None, Query()] = None,
    pr_number: Annotated[int | None, Query(ge=1, le=2**31 - 1)] = None,
    status_: Annotated[ValidationStatus | None, Query(alias="status")] = None,
) -> Page[ValidationResponse]:
    """The organization's validations, newest first."""
    rows, total = await service.list_validations(
        session, context.org_id, params, project_id=project_id, pr_number=pr_number, status=status_
    )
    return Page.build([ValidationResponse.model_validate(r) for r in rows], total, params)


@router.get("/{validation_id}", response_model=ValidationResponse)
async def get_validation(
    validation_id: Id, context: OrgReader, session: SessionDep
) -> ValidationResponse:
    validation = await service.get_validation(session, context.org_id, validation_id)
    return ValidationResponse.model_validate(validation)


@router.post(
    "/{validation_id}/retry",
    response_model=ValidationResponse,
    status_code=status.HTTP_202_ACCEPTED,
)
async def retry_validation(
    validation_id: Id, context: Retrier, session: SessionDep, settings: SettingsDep
) -> ValidationResponse:
    """Validate the pull request's current head again: a new validation (this one is kept)."""
    validation = await service.retry_validation(session, settings, context.org_id, validation_id)
    return ValidationResponse.model_validate(validation)


@legacy_router.get("/{validation_id}", response_model=ValidationResponse)
async def get_validation_legacy(
    validation_id: Id, context: CallerOrgReader, session: SessionDep
) -> ValidationResponse:
    validation = await service.get_validation(session, context.org_id, validation_id)
    return ValidationResponse.model_validate(validation)


@legacy_router.post(
    "/{validation_id}/retry",
    response_model=ValidationResponse,
    status_code=status.HTTP_202_ACCEPTED,
)
async def retry_validation_legacy(
    validation_id: Id, context: CallerRetrier, session: SessionDep, settings: SettingsDep
) -> ValidationResponse:
    validation = await service.retry_validation(session, settings, context.org_id, validation_id)
    return ValidationResponse.model_validate(validation)

"""Request-scoped helpers for job routes: who submits, and engines' admission checks."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from genway.auth.deps import OrgContext
from genway.jobs.schemas import JobCreate
from genway.jobs.service import Submitter

# An engine's check of a job input at submission, by kind (registered on `app.state` at start):
# (session, org_id, input) -> the input to store. Raises the engine's 4xx errors.
JobAdmission = Callable[[AsyncSession, int, dict[str, Any]], Awaitable[dict[str, Any]]]


def submitter(context: OrgContext) -> Submitter:
    return Submitter(context.org_id, context.user_id, context.principal.key_id)


async def admitted(
    request: Request, session: AsyncSession, org_id: int, spec: JobCreate
) -> JobCreate:
    """`spec` after its engine's admission check (the same spec for kinds without one)."""
    admissions: dict[str, JobAdmission] = getattr(request.app.state, "job_admission", {})
    check = admissions.get(spec.kind)
    if check is None:
        return spec
    return spec.model_copy(update={"input": await check(session, org_id, spec.input)})

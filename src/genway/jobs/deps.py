"""Request-scoped helpers for job routes: who submits, engines' admission checks, estimates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Annotated, Any

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from genway.auth.deps import OrgContext
from genway.jobs.eta import Estimator
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


def job_estimator(request: Request) -> Estimator:
    """The app's estimator of job start and finish times (made on first use, from settings)."""
    state = request.app.state
    estimator: Estimator | None = getattr(state, "job_estimator", None)
    if estimator is None:
        settings = state.settings
        estimator = Estimator(settings.worker_concurrency, settings.eta_cache_s)
        state.job_estimator = estimator
    return estimator


EstimatorDep = Annotated[Estimator, Depends(job_estimator)]

"""Request-scoped helpers for job routes: who submits, and announcing committed events."""

from __future__ import annotations

from fastapi import Request
from sqlalchemy.ext.asyncio import AsyncSession

from genway.auth.deps import OrgContext
from genway.jobs.events import take_pending
from genway.jobs.service import Submitter


def submitter(context: OrgContext) -> Submitter:
    return Submitter(context.org_id, context.user_id, context.principal.key_id)


def announce(request: Request, session: AsyncSession) -> None:
    """After a commit: publish the session's job events and wake local idle workers."""
    request.app.state.broadcaster.publish(take_pending(session))
    request.app.state.wakeup.notify()

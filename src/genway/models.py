"""Every ORM model, imported in one place so metadata (and Alembic) sees them all."""

from genway.auth.models import LoginSession, RefreshToken
from genway.db import Base
from genway.jobs.models import Job, JobEvent
from genway.keys.models import APIKey
from genway.orgs.models import Membership, Organization, User
from genway.ratelimit.models import UsageCounter

__all__ = [
    "APIKey",
    "Base",
    "Job",
    "JobEvent",
    "LoginSession",
    "Membership",
    "Organization",
    "RefreshToken",
    "UsageCounter",
    "User",
]

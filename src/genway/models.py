"""Every ORM model, imported in one place so metadata (and Alembic) sees them all."""

from genway.agents.models import AgentPlan
from genway.auth.models import LoginSession, RefreshToken
from genway.db import Base
from genway.jobs.models import Job, JobEvent
from genway.keys.models import APIKey
from genway.notifications.models import Notification, NotificationPreference, OutboundEmail
from genway.orgevents.models import OrgEvent
from genway.orgs.models import Invitation, Membership, Organization, User
from genway.projects.models import FileRevision, Project, ProjectFile
from genway.queue.models import QueuePause
from genway.ratelimit.models import UsageCounter
from genway.storage.models import Artifact
from genway.webhooks.models import (
    OrgWebhookSecret,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)

__all__ = [
    "APIKey",
    "AgentPlan",
    "Artifact",
    "Base",
    "FileRevision",
    "Invitation",
    "Job",
    "JobEvent",
    "LoginSession",
    "Membership",
    "Notification",
    "NotificationPreference",
    "OrgEvent",
    "OrgWebhookSecret",
    "Organization",
    "OutboundEmail",
    "Project",
    "ProjectFile",
    "QueuePause",
    "RefreshToken",
    "UsageCounter",
    "User",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]

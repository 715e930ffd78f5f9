"""Every ORM model, imported in one place so metadata (and Alembic) sees them all."""

from genway.agents.models import AgentPlan
from genway.auth.models import LoginSession, RefreshToken
from genway.db import Base
from genway.github.models import GithubConnection, GithubDelivery, PullRequest
from genway.jobs.models import Job, JobEvent
from genway.keys.models import APIKey
from genway.notifications.models import Notification, NotificationPreference, OutboundEmail
from genway.orgevents.models import OrgEvent
from genway.orgs.models import Invitation, Membership, Organization, User
from genway.projects.models import FileRevision, Project, ProjectFile
from genway.queue.models import QueuePause
from genway.ratelimit.models import UsageCounter
from genway.storage.models import Artifact
from genway.validation.models import Validation
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
    "GithubConnection",
    "GithubDelivery",
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
    "PullRequest",
    "QueuePause",
    "RefreshToken",
    "UsageCounter",
    "User",
    "Validation",
    "WebhookAttempt",
    "WebhookDelivery",
    "WebhookEndpoint",
]

"""`genway secrets rotate`: every secret stored encrypted, encrypted again with the newest key.

Put a new key first in `GENWAY_ENCRYPTION_KEYS` (older keys after it: they still decrypt), run
the rotation, then the old keys can be dropped. Each row is re-encrypted in place, in one
transaction per table; a value no configured key opens is reported, not changed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from cryptography.fernet import InvalidToken
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import Base
from genway.github.models import GithubConnection
from genway.kit.crypto import SecretBox
from genway.projects.models import Project
from genway.webhooks.models import OrgWebhookSecret, WebhookEndpoint

# (model, its encrypted columns)
ENCRYPTED: tuple[tuple[type[Base], tuple[str, ...]], ...] = (
    (WebhookEndpoint, ("secret", "previous_secret")),
    (OrgWebhookSecret, ("secret", "previous_secret")),
    (GithubConnection, ("secret",)),
    (Project, ("secrets_encrypted", "github_webhook_secret")),
)


@dataclass
class RotationReport:
    rotated: int = 0
    unreadable: list[str] = field(default_factory=list)


async def rotate_all(session: AsyncSession, box: SecretBox) -> RotationReport:
    """Re-encrypt every stored secret with `box`'s first key, in the caller's transaction."""
    report = RotationReport()
    for model, columns in ENCRYPTED:
        rows: list[Any] = list((await session.scalars(select(model))).all())
        for row in rows:
            for column in columns:
                value = getattr(row, column)
                if not value:
                    continue
                try:
                    setattr(row, column, box.rotate(value))
                except InvalidToken:
                    report.unreadable.append(f"{model.__tablename__}.{column} of row {row.id}")
                    continue
                report.rotated += 1
    await session.flush()
    return report

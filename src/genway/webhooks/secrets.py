"""Signing secrets at rest (encrypted) and in use: an endpoint's, and the organization's own
secret that signs per-job webhooks. A rotated-out secret keeps signing beside the new one for
`ROTATION_OVERLAP` so receivers can switch without missing a delivery."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from genway.db import utcnow
from genway.kit.crypto import SecretBox
from genway.webhooks.models import OrgWebhookSecret
from genway.webhooks.signing import new_secret

ROTATION_OVERLAP = timedelta(hours=24)
org_secrets: Table = OrgWebhookSecret.__table__  # type: ignore[assignment]


class HasSecrets(Protocol):
    secret: str
    previous_secret: str | None
    previous_secret_expires_at: datetime | None


def signing_secrets(box: SecretBox, holder: HasSecrets) -> list[str]:
    """The secrets that sign now: the current one, and the previous one while it overlaps."""
    found = [box.decrypt(holder.secret)]
    expires = holder.previous_secret_expires_at
    if holder.previous_secret is not None and expires is not None and expires > utcnow():
        found.append(box.decrypt(holder.previous_secret))
    return found


def rotate(box: SecretBox, holder: HasSecrets) -> str:
    """A new current secret (returned in clear, once); the old one overlaps for a day."""
    secret = new_secret()
    holder.previous_secret = holder.secret
    holder.previous_secret_expires_at = utcnow() + ROTATION_OVERLAP
    holder.secret = box.encrypt(secret)
    return secret


async def org_secret_row(session: AsyncSession, box: SecretBox, org_id: int) -> OrgWebhookSecret:
    """The organization's per-job signing secret, created on first use (by whichever process
    gets there first)."""
    row = await session.get(OrgWebhookSecret, org_id)
    if row is not None:
        return row
    dialect = postgresql if session.bind.dialect.name == "postgresql" else sqlite  # type: ignore[union-attr]
    await session.execute(
        dialect.insert(org_secrets)
        .values(org_id=org_id, secret=box.encrypt(new_secret()), created_at=utcnow())
        .on_conflict_do_nothing(index_elements=[org_secrets.c.org_id])
    )
    row = await session.get(OrgWebhookSecret, org_id)
    assert row is not None
    return row


async def org_signing_secrets(session: AsyncSession, box: SecretBox, org_id: int) -> list[str]:
    return signing_secrets(box, await org_secret_row(session, box, org_id))

"""Standard Webhooks signatures (the `standardwebhooks` library) and signing secrets."""

from __future__ import annotations

import base64
import secrets
from datetime import datetime

from standardwebhooks import Webhook

SECRET_PREFIX = "whsec_"


def new_secret() -> str:
    """A `whsec_` secret: 32 random bytes, base64, as Standard Webhooks defines it."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(32)).decode()


def sign(secrets_: list[str], message_id: str, timestamp: datetime, body: str) -> str:
    """`webhook-signature`: one `v1,<signature>` per secret, space-separated (during a
    rotation the previous secret signs too, so a receiver that has either verifies)."""
    return " ".join(Webhook(secret).sign(message_id, timestamp, body) for secret in secrets_)

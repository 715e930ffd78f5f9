"""High-entropy secrets and their stored form (SHA-256 hex); comparisons in constant time."""

from __future__ import annotations

import hashlib
import hmac
import secrets

API_KEY_PREFIX = "gw_"
REFRESH_TOKEN_PREFIX = "gwr_"
DISPLAY_PREFIX_LENGTH = 10
SECRET_BYTES = 32


def new_api_key() -> str:
    return API_KEY_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def new_refresh_token() -> str:
    return REFRESH_TOKEN_PREFIX + secrets.token_urlsafe(SECRET_BYTES)


def hash_secret(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def display_prefix(api_key: str) -> str:
    return api_key[:DISPLAY_PREFIX_LENGTH]


def secret_matches(secret: str, stored_hash: str) -> bool:
    return hmac.compare_digest(hash_secret(secret), stored_hash)


def looks_like_api_key(token: str) -> bool:
    return token.startswith(API_KEY_PREFIX)

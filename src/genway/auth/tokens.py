"""JWT access tokens (PyJWT, HS256); each names the login session it belongs to."""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import jwt

ALGORITHM = "HS256"
ACCESS_TOKEN_TYPE = "access"


@dataclass(frozen=True)
class AccessClaims:
    user_id: int
    session_id: int


class InvalidToken(Exception):
    pass


def issue_access_token(user_id: int, session_id: int, secret: str, ttl_s: int) -> str:
    now = datetime.now(UTC)
    claims = {
        "sub": str(user_id),
        "sid": session_id,
        "type": ACCESS_TOKEN_TYPE,
        "iat": now,
        "exp": now + timedelta(seconds=ttl_s),
        "jti": secrets.token_urlsafe(12),
    }
    return jwt.encode(claims, secret, algorithm=ALGORITHM)


def decode_access_token(token: str, secret: str) -> AccessClaims:
    """The claims of a valid, unexpired access token. Raises InvalidToken otherwise."""
    try:
        claims = jwt.decode(
            token, secret, algorithms=[ALGORITHM], options={"require": ["exp", "sub", "sid"]}
        )
    except jwt.ExpiredSignatureError as exc:
        raise InvalidToken("Access token expired") from exc
    except jwt.PyJWTError as exc:
        raise InvalidToken("Invalid access token") from exc
    if claims.get("type") != ACCESS_TOKEN_TYPE:
        raise InvalidToken("Invalid access token")
    try:
        return AccessClaims(user_id=int(claims["sub"]), session_id=int(claims["sid"]))
    except (TypeError, ValueError) as exc:
        raise InvalidToken("Invalid access token") from exc

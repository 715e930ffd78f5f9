"""Expiring signed URLs for artifacts: `/files/{org_id}/{artifact_id}/{name}?expires=&signature=`.

The signature is an HMAC-SHA256 of the organization, the artifact and the expiry, keyed by a key
derived from Genway's secret, so a URL works without any header (a browser, an `<img>` tag) until
it expires, and changing any part of it breaks the signature.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from urllib.parse import quote

from genway.errors import Forbidden

PURPOSE = b"genway:artifact-url:v1"


class InvalidSignature(Forbidden):
    detail = "Invalid or expired link"


class UrlSigner:
    def __init__(self, secret: str, ttl_s: int) -> None:
        self._key = hmac.new(secret.encode(), PURPOSE, hashlib.sha256).digest()
        self.ttl_s = ttl_s

    def _signature(self, org_id: int, artifact_id: int, expires: int) -> str:
        message = f"{org_id}:{artifact_id}:{expires}".encode()
        digest = hmac.new(self._key, message, hashlib.sha256).digest()
        return base64.urlsafe_b64encode(digest).decode().rstrip("=")

    def sign(self, org_id: int, artifact_id: int, name: str, now: float | None = None) -> str:
        """A path (with query) valid for `ttl_s` seconds."""
        expires = int((now if now is not None else time.time()) + self.ttl_s)
        signature = self._signature(org_id, artifact_id, expires)
        filename = quote(name.rsplit("/", 1)[-1])
        return f"/files/{org_id}/{artifact_id}/{filename}?expires={expires}&signature={signature}"

    def verify(
        self, org_id: int, artifact_id: int, expires: int, signature: str, now: float | None = None
    ) -> None:
        """Raises InvalidSignature for a wrong signature or an expired link."""
        expected = self._signature(org_id, artifact_id, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise InvalidSignature("Invalid link signature")
        if (now if now is not None else time.time()) > expires:
            raise InvalidSignature("This link has expired")

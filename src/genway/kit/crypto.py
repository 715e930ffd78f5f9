"""Secrets that must be read back (webhook signing secrets, tokens of other services) are stored
encrypted with Fernet. `MultiFernet`: the first key encrypts, every key decrypts, so a new key can
be put first and the old ones kept until everything is re-encrypted."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, MultiFernet


class SecretBox:
    def __init__(self, keys: list[str]) -> None:
        if not keys:
            raise ValueError("at least one encryption key is needed")
        self._fernet = MultiFernet([Fernet(key) for key in keys])

    @classmethod
    def from_secret_key(cls, secret_key: str, extra_keys: list[str] | None = None) -> SecretBox:
        """The configured keys first (`GENWAY_ENCRYPTION_KEYS`), then one derived from the
        service's secret key (so a deployment without the setting still encrypts)."""
        derived = base64.urlsafe_b64encode(
            hashlib.sha256(b"genway-encryption:" + secret_key.encode()).digest()
        ).decode()
        return cls([*(extra_keys or []), derived])

    def encrypt(self, plaintext: str) -> str:
        return self._fernet.encrypt(plaintext.encode()).decode()

    def decrypt(self, token: str) -> str:
        """Raises cryptography.fernet.InvalidToken when no key opens it."""
        return self._fernet.decrypt(token.encode()).decode()

    def rotate(self, token: str) -> str:
        """The same plaintext encrypted with the newest key (`genway secrets rotate`)."""
        return self._fernet.rotate(token.encode()).decode()

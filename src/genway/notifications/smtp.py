"""The SMTP server from `GENWAY_SMTP_URL` and sending one message to it (aiosmtplib).

`smtp://user:pass@host:587?starttls=true` upgrades with STARTTLS (`starttls=false` never does;
without the option, it upgrades when the server offers it); `smtps://host:465` speaks TLS from
the start; `verify=false` accepts a certificate that does not verify (a private relay)."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

import aiosmtplib

OPTIONS = ("starttls", "verify")
_TRUE, _FALSE = ("true", "1", "yes", "on"), ("false", "0", "no", "off")


@dataclass(frozen=True)
class SMTPServer:
    hostname: str
    port: int
    username: str | None = None
    password: str | None = None
    use_tls: bool = False  # implicit TLS (smtps://)
    start_tls: bool | None = None  # None: upgrade when the server offers it
    validate_certs: bool = True
    timeout_s: float = 30.0

    @classmethod
    def from_url(cls, url: str, timeout_s: float = 30.0) -> SMTPServer:
        """Raises ValueError for a URL that does not name an SMTP server."""
        parts = urlsplit(url)
        if parts.scheme not in ("smtp", "smtps"):
            raise ValueError("GENWAY_SMTP_URL must start with smtp:// or smtps://")
        if not parts.hostname:
            raise ValueError("GENWAY_SMTP_URL has no host")
        query = parse_qs(parts.query, keep_blank_values=True)
        unknown = sorted(set(query) - set(OPTIONS))
        if unknown:
            raise ValueError(f"GENWAY_SMTP_URL: unknown option(s) {', '.join(unknown)}")
        start_tls = _flag(query, "starttls")
        implicit = parts.scheme == "smtps"
        if implicit and start_tls:
            raise ValueError("GENWAY_SMTP_URL: smtps:// is TLS already; drop starttls=true")
        default_port = 465 if implicit else 587 if start_tls else 25
        return cls(
            hostname=parts.hostname,
            port=parts.port or default_port,
            username=unquote(parts.username) if parts.username else None,
            password=unquote(parts.password) if parts.password is not None else None,
            use_tls=implicit,
            start_tls=False if implicit else start_tls,
            validate_certs=_flag(query, "verify") is not False,
            timeout_s=timeout_s,
        )

    async def send(self, message: EmailMessage) -> None:
        """Send over a connection of its own; raises aiosmtplib's errors (and TimeoutError
        when the whole exchange takes more than a few timeouts)."""
        async with asyncio.timeout(self.timeout_s * 3):
            await aiosmtplib.send(
                message,
                hostname=self.hostname,
                port=self.port,
                username=self.username,
                password=self.password,
                use_tls=self.use_tls,
                start_tls=self.start_tls,
                validate_certs=self.validate_certs,
                timeout=self.timeout_s,
            )


def _flag(query: dict[str, list[str]], name: str) -> bool | None:
    if name not in query:
        return None
    value = query[name][-1].strip().lower()
    if value in _TRUE:
        return True
    if value in _FALSE:
        return False
    raise ValueError(f"GENWAY_SMTP_URL: {name} must be true or false, not {value!r}")


def is_permanent(error: BaseException) -> bool:
    """Whether the server refused the message for good (5xx for the recipient or the content);
    anything else, including a refused login, may pass on a later attempt."""
    if isinstance(error, aiosmtplib.SMTPRecipientsRefused):
        return all(refused.code >= 500 for refused in error.recipients)
    if isinstance(error, aiosmtplib.SMTPRecipientRefused | aiosmtplib.SMTPDataError):
        return error.code >= 500
    return False

"""`GENWAY_SMTP_URL`: what each form means, and clear errors for what is not one."""

from __future__ import annotations

import pytest

from genway.notifications.smtp import SMTPServer


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "smtp://user:p%40ss@mail.example.com:587?starttls=true",
            SMTPServer("mail.example.com", 587, "user", "p@ss", False, True),
        ),
        ("smtp://mail.example.com", SMTPServer("mail.example.com", 25, start_tls=None)),
        ("smtp://relay?starttls=false", SMTPServer("relay", 25, start_tls=False)),
        ("smtp://relay?starttls=true", SMTPServer("relay", 587, start_tls=True)),
        (
            "smtps://u:p@mail.example.com",
            SMTPServer("mail.example.com", 465, "u", "p", True, False),
        ),
        (
            "smtps://relay:2465?verify=false",
            SMTPServer("relay", 2465, use_tls=True, start_tls=False, validate_certs=False),
        ),
    ],
)
def test_forms(url: str, expected: SMTPServer):
    assert SMTPServer.from_url(url) == expected


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("http://mail.example.com", "must start with smtp:// or smtps://"),
        ("smtp://", "has no host"),
        ("smtp://relay?tls=yes", "unknown option(s) tls"),
        ("smtp://relay?starttls=maybe", "starttls must be true or false"),
        ("smtps://relay?starttls=true", "smtps:// is TLS already"),
        ("smtp://relay:notaport", "Port could not be cast"),
    ],
)
def test_unusable_urls(url: str, message: str):
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        SMTPServer.from_url(url)

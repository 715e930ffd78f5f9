"""Email addresses as Genway accepts them: any syntactically valid address.

email-validator (behind pydantic's `EmailStr`) also refuses, by default, addresses that cannot be
delivered on the public internet: special-use domains (`.local`, `.test`, `.internal`...) and
hosts without a dot (`localhost`). Internal deployments use those (the bootstrap's owner is
`owner@genway.local`), so they are allowed for the whole process through the library's module
settings, which are its documented way to change these defaults: every `EmailStr` field then
checks syntax only. Deliverability (a DNS lookup) is never checked.
"""

from __future__ import annotations

import email_validator
from pydantic import EmailStr

email_validator.GLOBALLY_DELIVERABLE = False
email_validator.CHECK_DELIVERABILITY = False
email_validator.SPECIAL_USE_DOMAIN_NAMES = []

EmailAddress = EmailStr


def check_email(value: str) -> str:
    """The address, normalized. Raises ValueError for one that is not syntactically valid."""
    try:
        checked = email_validator.validate_email(
            value, check_deliverability=False, globally_deliverable=False
        )
    except email_validator.EmailNotValidError as exc:
        raise ValueError(str(exc)) from exc
    return checked.normalized

"""Emails from Jinja2 templates (`templates/`): a plain-text and an HTML part (autoescaped)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from jinja2 import Environment, PackageLoader, select_autoescape

from genway.notifications.models import NotificationKind

SUBJECT_PREFIX = "[Genway] "
_environment = Environment(
    loader=PackageLoader("genway.notifications", "templates"),
    autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=True),
    trim_blocks=True,
    keep_trailing_newline=True,
)


@dataclass(frozen=True)
class RenderedEmail:
    subject: str
    text: str
    html: str


def render_email(kind: str, context: dict[str, Any]) -> RenderedEmail:
    """Raises ValueError for an unknown kind, jinja2's errors for a broken template."""
    name = NotificationKind(kind).category.value  # `quota.*` serves both quota kinds
    values = {"data": {}, **context, "kind": kind}
    text = _environment.get_template(f"{name}.txt").render(values)
    html = _environment.get_template(f"{name}.html").render(values)
    subject = SUBJECT_PREFIX + re.sub(r"\s+", " ", str(context.get("title", ""))).strip()
    return RenderedEmail(subject, text, html)

"""The code task's structured answer: a summary and file edits, parsed from model text.

Models are asked for one JSON object in a ```json block; they do not always comply exactly, so
the parser also accepts a bare object or an unlabelled fence, and takes the last candidate that
parses (a model that shows an example before its answer puts the answer last). Paths are
checked by the same rules as the file API: an agent cannot write outside its project either.
"""

from __future__ import annotations

import json
import re
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from genway.projects.files import Change
from genway.projects.paths import normalize_path

_FENCE = re.compile(r"```[ \t]*(?:json)?[ \t]*\n(.*?)```", re.DOTALL | re.IGNORECASE)
MAX_EDITS = 200


class Edit(BaseModel):
    model_config = ConfigDict(extra="ignore")

    path: str = Field(min_length=1, max_length=4096)
    action: Literal["write", "delete"] = "write"
    content: str | None = None
    language: str | None = Field(default=None, max_length=50)


class EditPlan(BaseModel):
    model_config = ConfigDict(extra="ignore")

    summary: str = ""
    edits: list[Edit] = Field(default_factory=list, max_length=MAX_EDITS)


class InvalidEdits(ValueError):
    """The answer holds no usable edit plan; the message says why."""


def _candidates(text: str) -> list[str]:
    found = [match.group(1) for match in _FENCE.finditer(text)]
    start, end = text.find("{"), text.rfind("}")
    if start != -1 and end > start:
        found.append(text[start : end + 1])
    return found


def parse_edit_plan(text: str) -> EditPlan:
    """The last JSON edit plan in `text`. Raises InvalidEdits."""
    errors: list[str] = []
    for candidate in reversed(_candidates(text)):
        try:
            raw: Any = json.loads(candidate)
            plan = EditPlan.model_validate(raw)
        except (ValueError, ValidationError) as exc:
            errors.append(str(exc).splitlines()[0])
            continue
        _check(plan)
        return plan
    reason = errors[0] if errors else "no JSON object found"
    raise InvalidEdits(f"The answer holds no edit plan ({reason})")


def _check(plan: EditPlan) -> None:
    for edit in plan.edits:
        if edit.action == "write" and edit.content is None:
            raise InvalidEdits(f"Edit of '{edit.path}' writes the file but gives no content")


def plan_changes(plan: EditPlan) -> list[Change]:
    """The plan as file changes with normalized paths. Raises InvalidPath."""
    return [
        Change(
            normalize_path(edit.path),
            edit.content if edit.action == "write" else None,
            edit.language,
        )
        for edit in plan.edits
    ]

"""The agent tasks and their system prompts, kept as package data in `prompts/*.md`."""

from __future__ import annotations

from enum import StrEnum
from functools import cache
from importlib import resources


class Task(StrEnum):
    """What an agent run does; each task has its own system prompt and model route."""

    RESEARCH = "research"
    WIREFRAME = "wireframe"
    CODE = "code"
    QA = "qa"
    PEDAGOGY = "pedagogy"


# Prompts of the Pro Mode steps that are not agent tasks; judge and synthesis have routes too.
JUDGE = "judge"
SYNTHESIS = "synthesis"
IMPROVE = "improve"


@cache
def system_prompt(name: str) -> str:
    """The system prompt named `name` (a task, judge, synthesis or improve)."""
    return resources.files("genway.agents").joinpath("prompts", f"{name}.md").read_text("utf-8")

"""What an agent is told: the request, its context and the project's files, within a budget."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from genway.engines.llm.providers import ChatMessage
from genway.projects.models import Project, ProjectFile

# Characters of file content put in front of a model; beyond it files are listed, not shown.
FILES_BUDGET_CHARS = 200_000


def project_section(project: Project, files: Sequence[ProjectFile]) -> str:
    """The project and as many of its files as fit the budget, smallest first (many small
    files usually tell a model more than one large one)."""
    lines = [f"Project: {project.name}"]
    if project.description:
        lines.append(f"Description: {project.description}")
    if project.repository_url:
        lines.append(f"Repository: {project.repository_url}")
    if not files:
        lines.append("The project has no files yet.")
        return "\n".join(lines)
    shown: set[str] = set()
    budget = FILES_BUDGET_CHARS
    for file in sorted(files, key=lambda f: (len(f.content), f.path)):
        if len(file.content) <= budget:
            shown.add(file.path)
            budget -= len(file.content)
    lines.append(f"Files ({len(files)}):")
    for file in files:
        if file.path in shown:
            language = file.language or ""
            lines.append(f"--- {file.path}\n```{language}\n{file.content}\n```")
        else:
            lines.append(f"--- {file.path} ({file.size_bytes} bytes, not shown)")
    return "\n".join(lines)


def user_message(
    prompt: str,
    context: dict[str, Any] | None,
    project: str | None,
    images: int = 0,
) -> str:
    parts = [prompt]
    if context:
        parts.append("Context:\n" + json.dumps(context, indent=2, ensure_ascii=False))
    if images:
        # The built-in providers send text only; say so rather than pretend to have seen them.
        parts.append(f"({images} image(s) were attached to this request; they are not shown.)")
    if project:
        parts.append(project)
    return "\n\n".join(parts)


def conversation(history: Sequence[dict[str, str]], message: str) -> list[ChatMessage]:
    """Earlier turns (from a resumed run) followed by the new user message."""
    turns: list[ChatMessage] = []
    for turn in history:
        content = turn.get("content", "")
        if turn.get("role") == "assistant":
            turns.append({"role": "assistant", "content": content})
        else:
            turns.append({"role": "user", "content": content})
    if turns and turns[-1]["role"] == "user":
        # Providers expect turns to alternate; fold a dangling user turn into the new one.
        message = f"{turns.pop()['content']}\n\n{message}"
    turns.append({"role": "user", "content": message})
    return turns

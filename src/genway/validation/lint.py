"""Static checks beside the tests (seed 004's code-analysis role).

A project's `lint_commands` run as they are (their exit status decides). With none configured,
a Python repository gets Genway's default: ruff with the rules that stop a build (syntax errors,
undefined names, invalid comparisons: E9, F63, F7, F82), reading no configuration from the
repository. Ruff's binary is mounted read-only into the same sandbox as the tests; its JSON
findings become part of the validation's `test_results`.
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

DEFAULT_RULES = "E9,F63,F7,F82"
MAX_FINDINGS = 200
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__"})


@dataclass(frozen=True)
class DefaultCheck:
    tool: str
    command: str
    binary: str


def _ruff_binary() -> str | None:
    try:
        from ruff.__main__ import find_ruff_bin  # type: ignore[import-untyped]
    except ImportError:
        return shutil.which("ruff")
    try:
        return str(os.fspath(find_ruff_bin()))
    except FileNotFoundError:
        return shutil.which("ruff")


def _has_python(root: Path, limit: int = 5000) -> bool:
    seen = 0
    for _directory, dirs, files in os.walk(root, followlinks=False):
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        if any(name.endswith(".py") for name in files):
            return True
        seen += len(files)
        if seen > limit:
            return False
    return False


def default_check(root: Path) -> DefaultCheck | None:
    """The default static check for the repository in `root`, if its language has one."""
    if not _has_python(root):
        return None
    binary = _ruff_binary()
    if binary is None:
        return None
    command = (
        f"{binary} check --isolated --no-cache --select {DEFAULT_RULES} "
        "--output-format json --exit-zero ."
    )
    return DefaultCheck("ruff", command, binary)


def ruff_findings(output: str, root: Path) -> list[dict[str, Any]]:
    """Ruff's JSON findings, paths relative to the repository. Raises ValueError."""
    start = output.find("[")
    if start < 0:
        raise ValueError("no JSON in ruff's output")
    items = json.loads(output[start:])
    findings = []
    for item in items[:MAX_FINDINGS]:
        filename = str(item.get("filename") or "")
        try:
            filename = str(Path(filename).relative_to(root))
        except ValueError:
            pass
        location = item.get("location") or {}
        findings.append(
            {
                "tool": "ruff",
                "path": filename,
                "line": location.get("row"),
                "column": location.get("column"),
                "code": item.get("code"),
                "message": item.get("message"),
            }
        )
    return findings

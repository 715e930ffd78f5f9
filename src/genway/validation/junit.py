"""JUnit XML reports that test commands left in the snapshot: counted and their failures kept.

The files come from untrusted code, so they are parsed with defusedxml (no entities, no external
references), only regular files (never symlinks) of bounded size and number are read, and the
walk is bounded in depth. The format is the common denominator of pytest's `--junitxml`, JUnit,
Jest's and Go's reporters: `<testsuites>` or `<testsuite>` holding `<testcase>` elements with
`<failure>`, `<error>` or `<skipped>` children.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from xml.etree.ElementTree import Element

from defusedxml import ElementTree
from defusedxml.common import DefusedXmlException

MAX_FILE_BYTES = 10 * 1024 * 1024
MAX_FILES = 50
MAX_DEPTH = 6
MAX_FAILURES = 200
MESSAGE_CHARS = 2000
SKIP_DIRS = frozenset({".git", "node_modules", ".venv", "venv", "__pycache__", ".tox"})


@dataclass
class TestReport:
    passed: int = 0
    failed: int = 0
    errors: int = 0
    skipped: int = 0
    failures: list[dict[str, Any]] = field(default_factory=list)
    files: list[str] = field(default_factory=list)

    @property
    def total(self) -> int:
        return self.passed + self.failed + self.errors + self.skipped

    def as_dict(self) -> dict[str, Any]:
        return {
            "total": self.total,
            "passed": self.passed,
            "failed": self.failed,
            "errors": self.errors,
            "skipped": self.skipped,
            "failures": self.failures,
            "report_files": self.files,
        }


def _candidates(root: Path) -> list[Path]:
    found: list[Path] = []
    base_depth = len(root.parts)
    for directory, dirs, files in os.walk(root, followlinks=False):
        here = Path(directory)
        if len(here.parts) - base_depth >= MAX_DEPTH:
            dirs[:] = []
        dirs[:] = [d for d in dirs if d not in SKIP_DIRS]
        for name in sorted(files):
            if name.endswith(".xml"):
                path = here / name
                if not path.is_symlink() and path.is_file():
                    found.append(path)
                    if len(found) >= MAX_FILES:
                        return found
    return found


def _text(element: Element) -> str:
    message = element.get("message") or ""
    body = (element.text or "").strip()
    text = f"{message}\n{body}".strip() if body and body != message else message or body
    return text[:MESSAGE_CHARS]


def _add_case(report: TestReport, case: Element) -> None:
    outcome = None
    for child in case:
        if child.tag in ("failure", "error", "skipped"):
            outcome = child
            break
    if outcome is None:
        report.passed += 1
        return
    if outcome.tag == "skipped":
        report.skipped += 1
        return
    if outcome.tag == "failure":
        report.failed += 1
    else:
        report.errors += 1
    if len(report.failures) < MAX_FAILURES:
        report.failures.append(
            {
                "name": case.get("name") or "",
                "classname": case.get("classname") or "",
                "kind": outcome.tag,
                "message": _text(outcome),
            }
        )


def parse_reports(root: Path) -> TestReport:
    """Every JUnit report under `root`, added up (files that are not JUnit are ignored)."""
    report = TestReport()
    for path in _candidates(root):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            tree = ElementTree.parse(path, forbid_dtd=True)
        except (OSError, DefusedXmlException, ElementTree.ParseError):
            continue
        top = tree.getroot()
        if top is None or top.tag not in ("testsuites", "testsuite"):
            continue
        report.files.append(str(path.relative_to(root)))
        for case in top.iter("testcase"):
            _add_case(report, case)
    return report

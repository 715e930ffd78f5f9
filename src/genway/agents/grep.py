"""The search tool's Python fallback (ripgrep is used when installed), run as a process of its
own: `python -m genway.agents.grep PATTERN ROOT BASE`. A pattern from a model may backtrack
catastrophically in Python's `re`; in a process, the caller's timeout can kill it, which it
could not do to a thread.

Prints `path:line: text` for each match (paths relative to ROOT), at most LIMIT + 1 lines, and
skips symlinks, directories no one searches (`.git`, `node_modules`, ...) and files over 4 MiB.
"""

from __future__ import annotations

import os
import re
import sys
from collections.abc import Iterator
from pathlib import Path

LIMIT = 200
MAX_FILE_BYTES = 4 * 1024 * 1024
SKIPPED_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv", ".mypy_cache"})


def files_under(base: Path) -> Iterator[Path]:
    if base.is_file() and not base.is_symlink():
        yield base
        return
    for directory, dirs, names in os.walk(base):
        dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
        for name in sorted(names):
            path = Path(directory) / name
            if path.is_file() and not path.is_symlink():
                yield path


def search(pattern: re.Pattern[str], root: Path, base: Path) -> Iterator[str]:
    for path in files_under(base):
        try:
            if path.stat().st_size > MAX_FILE_BYTES:
                continue
            text = path.read_bytes().decode("utf-8")
        except (OSError, UnicodeDecodeError):
            continue
        relative = path.relative_to(root).as_posix()
        for number, line in enumerate(text.splitlines(), 1):
            if pattern.search(line):
                yield f"{relative}:{number}: {line[:300]}"


def main(argv: list[str]) -> int:
    pattern, root, base = re.compile(argv[0]), Path(argv[1]), Path(argv[2])
    for count, match in enumerate(search(pattern, root, base)):
        print(match)
        if count >= LIMIT:
            break
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

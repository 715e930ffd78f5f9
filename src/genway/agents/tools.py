"""The tools a code agent works with, on one directory (the run's checkout of its branch).

Files are read and written by Genway itself, so every path is checked here: relative, inside
the directory, not through a symlink that leads out of it, never into `.git`. Commands run in
the sandbox (`genway.sandbox`), where the directory is the only writable place; without a
sandbox the command tool says so instead of running anything.

A tool's failure (a missing file, an ambiguous edit, a command that exits 1) is an answer for
the model, not an error of the run: `ToolError` carries the message it reads.
"""

from __future__ import annotations

import asyncio
import os
import re
import shutil
import sys
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from genway.config import Settings
from genway.engines.llm.providers import ToolSpec
from genway.sandbox import (
    SandboxLimits,
    SandboxUnavailable,
    run_sandboxed,
    sandbox_unavailable_reason,
)

MAX_LISTED = 1000
MAX_READ_CHARS = 60_000
MAX_READ_BYTES = 4 * 1024 * 1024
MAX_MATCHES = 200
SEARCH_TIMEOUT_S = 20.0
MAX_WRITE_BYTES = 1024 * 1024
SKIPPED_DIRS = frozenset({".git", "__pycache__", "node_modules", ".venv", ".mypy_cache"})

LIST_FILES = "list_files"
READ_FILE = "read_file"
SEARCH = "search"
WRITE_FILE = "write_file"
EDIT_FILE = "edit_file"
RUN_COMMAND = "run_command"
FINISH = "finish"
SUBMIT_PLAN = "submit_plan"


class ToolError(Exception):
    """A tool could not do what was asked; the message is shown to the model."""


def _schema(properties: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": properties,
        "required": required,
        "additionalProperties": False,
    }


_PATH = {"type": "string", "description": "A path relative to the project root"}

READ_ONLY_SPECS = (
    ToolSpec(
        LIST_FILES,
        "List the project's files (recursively) under a directory.",
        _schema({"path": {**_PATH, "description": "Directory; default the root"}}, []),
    ),
    ToolSpec(
        READ_FILE,
        "Read a text file, with line numbers; optionally only lines start_line..end_line.",
        _schema(
            {
                "path": _PATH,
                "start_line": {"type": "integer", "minimum": 1},
                "end_line": {"type": "integer", "minimum": 1},
            },
            ["path"],
        ),
    ),
    ToolSpec(
        SEARCH,
        "Search the files for a regular expression; answers path:line: text for each match.",
        _schema(
            {
                "pattern": {"type": "string", "description": "A regular expression"},
                "path": {**_PATH, "description": "Directory or file to search; default all"},
            },
            ["pattern"],
        ),
    ),
)
WRITE_SPECS = (
    ToolSpec(
        WRITE_FILE,
        "Create or replace a file with the given content.",
        _schema({"path": _PATH, "content": {"type": "string"}}, ["path", "content"]),
    ),
    ToolSpec(
        EDIT_FILE,
        "Replace the exact text old_text, which must occur exactly once, by new_text.",
        _schema(
            {"path": _PATH, "old_text": {"type": "string"}, "new_text": {"type": "string"}},
            ["path", "old_text", "new_text"],
        ),
    ),
)
COMMAND_SPEC = ToolSpec(
    RUN_COMMAND,
    "Run a shell command in the project directory (sandboxed: no network unless the project "
    "allows it, only the project directory is writable). Answers the exit code and output.",
    _schema(
        {
            "command": {"type": "string", "description": "Run by /bin/sh -c"},
            "timeout_s": {"type": "number", "minimum": 1, "description": "At most the limit"},
        },
        ["command"],
    ),
)
FINISH_SPEC = ToolSpec(
    FINISH,
    "Finish the run: call it once the work is done (or cannot be done), with a summary.",
    _schema({"summary": {"type": "string"}}, ["summary"]),
)
PLAN_SPEC = ToolSpec(
    SUBMIT_PLAN,
    "Submit the plan of the work (steps, files to change, how it will be tested) for review.",
    _schema({"plan": {"type": "string"}}, ["plan"]),
)


def work_specs(*, commands: bool) -> list[ToolSpec]:
    """The tools of a run that changes code (the command tool only with a sandbox)."""
    return [*READ_ONLY_SPECS, *WRITE_SPECS, *([COMMAND_SPEC] if commands else []), FINISH_SPEC]


def plan_specs() -> list[ToolSpec]:
    """The tools of the planning phase: look, then submit the plan."""
    return [*READ_ONLY_SPECS, PLAN_SPEC]


OutputSink = Callable[[str], Awaitable[None] | None]
# Without a .gitignore, bytecode from a test run would land in the run's commit.
COMMAND_ENV = {"PYTHONDONTWRITEBYTECODE": "1"}


def command_limits(settings: Settings, *, network: bool) -> SandboxLimits:
    """The sandbox limits of an agent's commands, from settings (network: the project's)."""
    return SandboxLimits(
        timeout_s=settings.agent_command_timeout_s,
        cpu_s=max(1, int(settings.agent_command_timeout_s)),
        memory_bytes=settings.agent_command_memory_mb * 1024 * 1024,
        network=network,
    )


@dataclass
class Workspace:
    """A run's directory and what its commands may do."""

    root: Path
    limits: SandboxLimits
    env: dict[str, str] = field(default_factory=dict)
    on_output: OutputSink | None = None

    def __post_init__(self) -> None:
        self.root = self.root.resolve()

    @property
    def commands_available(self) -> bool:
        return sandbox_unavailable_reason() is None

    def resolve(self, path: str, *, allow_root: bool = False) -> Path:
        """The absolute path of `path` inside the root. Raises ToolError for anything that
        leaves it (absolute paths, `..`, symlinks pointing out) or touches `.git`."""
        cleaned = (path or "").strip()
        if cleaned in ("", ".", "./"):
            if allow_root:
                return self.root
            raise ToolError("A file path is required")
        if "\x00" in cleaned:
            raise ToolError("A path cannot contain NUL")
        if os.path.isabs(cleaned):
            raise ToolError(f"'{path}' is absolute; paths are relative to the project root")
        parts = Path(cleaned).parts
        if ".." in parts:
            raise ToolError(f"'{path}' leaves the project directory")
        if ".git" in parts:
            raise ToolError("The .git directory is not part of the project's files")
        candidate = self.root.joinpath(*parts)
        real = Path(os.path.realpath(candidate))
        if real != self.root and self.root not in real.parents:
            raise ToolError(f"'{path}' leads outside the project directory (through a symlink)")
        return candidate

    def relative(self, path: Path) -> str:
        return path.relative_to(self.root).as_posix()

    # -- the tools ---------------------------------------------------------------------------

    def list_files(self, path: str = "") -> str:
        base = self.resolve(path, allow_root=True)
        if not base.is_dir():
            raise ToolError(f"'{path}' is not a directory")
        found: list[str] = []
        for directory, dirs, names in os.walk(base):
            dirs[:] = sorted(d for d in dirs if d not in SKIPPED_DIRS)
            for name in sorted(names):
                found.append(self.relative(Path(directory) / name))
                if len(found) >= MAX_LISTED:
                    return "\n".join(found) + f"\n... (more than {MAX_LISTED} files; narrow path)"
        return "\n".join(found) if found else "(no files)"

    def read_file(
        self, path: str, start_line: int | None = None, end_line: int | None = None
    ) -> str:
        target = self._existing_file(path)
        with target.open("rb") as handle:  # a huge file is read only as far as is shown
            text = handle.read(MAX_READ_BYTES).decode("utf-8", errors="replace")
        lines = text.splitlines()
        first = max(1, start_line or 1)
        last = min(len(lines), end_line or len(lines))
        if lines and first > len(lines):
            raise ToolError(f"'{path}' has {len(lines)} lines; start_line {first} is past its end")
        shown, size = [], 0
        for number in range(first, last + 1):
            line = f"{number:>6}\t{lines[number - 1]}"
            size += len(line) + 1
            if size > MAX_READ_CHARS:
                shown.append(f"... (stopped at line {number - 1}; read on with start_line)")
                break
            shown.append(line)
        return "\n".join(shown) if shown else "(empty file)"

    async def search(self, pattern: str, path: str = "") -> str:
        try:
            re.compile(pattern)
        except re.error as exc:
            raise ToolError(f"Invalid regular expression: {exc}") from exc
        base = self.resolve(path, allow_root=True)
        rg = shutil.which("rg")
        if rg is not None:
            # ripgrep skips hidden and ignored files and does not follow symlinks by default.
            command = [rg, "--line-number", "--no-heading", "--color=never", "--max-columns=300"]
            command += ["--max-filesize=4M", "--regexp", pattern, "--", str(base)]
        else:
            command = [sys.executable, "-m", "genway.agents.grep", pattern, str(self.root)]
            command.append(str(base))
        lines = await self._matches(command)
        prefix = f"{self.root}/"
        matches = [line.removeprefix(prefix) for line in lines[:MAX_MATCHES]]
        more = f"\n... (more than {MAX_MATCHES} matches)" if len(lines) > MAX_MATCHES else ""
        return "\n".join(matches) + more if matches else "(no matches)"

    async def _matches(self, command: list[str]) -> list[str]:
        """Run a search process (killed after SEARCH_TIMEOUT_S); its output lines."""
        process = await asyncio.create_subprocess_exec(
            *command, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
        )
        try:
            async with asyncio.timeout(SEARCH_TIMEOUT_S):
                out, err = await process.communicate()
        except TimeoutError:
            raise ToolError(
                f"The search took longer than {SEARCH_TIMEOUT_S:g} s; narrow the pattern or path"
            ) from None
        finally:
            if process.returncode is None:
                process.kill()
                await process.wait()
        if process.returncode not in (0, 1):  # 1: nothing found (ripgrep)
            raise ToolError(f"Search failed: {err.decode(errors='replace')[:500]}")
        return out.decode(errors="replace").splitlines()

    def write_file(self, path: str, content: str) -> str:
        target = self.resolve(path)
        data = content.encode()
        if len(data) > MAX_WRITE_BYTES:
            raise ToolError(f"The content is {len(data)} bytes; one file may have at most 1 MiB")
        if target.is_dir():
            raise ToolError(f"'{path}' is a directory")
        existed = target.exists()
        target.parent.mkdir(parents=True, exist_ok=True)
        self.resolve(path)  # the directories just made cannot have moved it out, but check
        self._write(target, data)
        verb = "replaced" if existed else "created"
        return f"{verb} {self.relative(target)} ({len(data)} bytes)"

    def edit_file(self, path: str, old_text: str, new_text: str) -> str:
        target = self._existing_file(path)
        if target.stat().st_size > MAX_WRITE_BYTES:
            raise ToolError(f"'{path}' is larger than 1 MiB; it cannot be edited here")
        try:
            text = target.read_bytes().decode("utf-8")
        except UnicodeDecodeError as exc:
            raise ToolError(f"'{path}' is not UTF-8 text") from exc
        if not old_text:
            raise ToolError("old_text is empty; use write_file to write a whole file")
        count = text.count(old_text)
        if count == 0:
            raise ToolError(f"old_text does not occur in '{path}'; read the file and copy exactly")
        if count > 1:
            raise ToolError(
                f"old_text occurs {count} times in '{path}'; include more lines to make it unique"
            )
        self._write(target, text.replace(old_text, new_text, 1).encode())
        line = text[: text.index(old_text)].count("\n") + 1
        return f"edited {self.relative(target)} at line {line}"

    async def run_command(self, command: str, timeout_s: float | None = None) -> str:
        if not command.strip():
            raise ToolError("The command is empty")
        limits = self.limits
        if timeout_s is not None and 0 < timeout_s < limits.timeout_s:
            limits = replace(limits, timeout_s=float(timeout_s))
        try:
            result = await run_sandboxed(
                command, workdir=self.root, limits=limits, env=self.env, on_output=self.on_output
            )
        except SandboxUnavailable as exc:
            raise ToolError(f"Commands cannot run here: {exc}") from exc
        status = f"exit code {result.exit_code}"
        if result.timed_out:
            status = f"killed after {limits.timeout_s:g} s (timeout)"
        elif result.killed:
            status = f"killed ({result.killed})"
        tail = "\n(output truncated)" if result.truncated else ""
        return f"[{status}, {result.duration_s:.1f} s]\n{result.output}{tail}"

    # -- helpers -----------------------------------------------------------------------------

    def _existing_file(self, path: str) -> Path:
        target = self.resolve(path)
        if not target.exists():
            raise ToolError(f"'{path}' does not exist")
        if not target.is_file():
            raise ToolError(f"'{path}' is not a file")
        return target

    @staticmethod
    def _write(target: Path, data: bytes) -> None:
        # O_NOFOLLOW: a symlink put in place by a command is replaced, never written through.
        if target.is_symlink():
            target.unlink()
        flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW
        fd = os.open(target, flags, 0o644)
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)

"""`.gitignore` rules, enough of git's semantics for staging a worktree: blank lines and `#`
comments, `!` negation, a trailing `/` for directories only, a `/` at the start or in the middle
anchoring the pattern to its file's directory, `*`, `?`, `[...]` and `**`; the last matching rule
wins, and rules of deeper directories come after those of their parents. (libgit2's own matcher
needs a repository with a working directory, which a worktree deliberately is not.)
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

ALWAYS_IGNORED = (".git",)


@dataclass(frozen=True)
class Rule:
    pattern: re.Pattern[str]
    negate: bool
    dir_only: bool
    base: str  # the directory of the .gitignore, '' or ending with '/'
    anchored: bool


def _translate(glob: str) -> str:
    out, i = [], 0
    while i < len(glob):
        char = glob[i]
        if glob.startswith("**/", i):
            out.append("(?:.*/)?")
            i += 3
        elif glob.startswith("/**", i) and i + 3 == len(glob):
            out.append("/.*")
            i += 3
        elif glob.startswith("**", i):
            out.append(".*")
            i += 2
        elif char == "*":
            out.append("[^/]*")
            i += 1
        elif char == "?":
            out.append("[^/]")
            i += 1
        elif char == "[":
            end = glob.find("]", i + 2)
            if end < 0:
                out.append(re.escape(char))
                i += 1
            else:
                body = glob[i + 1 : end].replace("\\", "\\\\")
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append(f"[{body}]")
                i = end + 1
        elif char == "\\" and i + 1 < len(glob):
            out.append(re.escape(glob[i + 1]))
            i += 2
        else:
            out.append(re.escape(char))
            i += 1
    return "".join(out)


def parse_rules(text: str, base: str) -> list[Rule]:
    rules = []
    for raw in text.splitlines():
        line = raw.rstrip()
        if not line or line.startswith("#"):
            continue
        negate = line.startswith("!")
        if negate:
            line = line[1:]
        dir_only = line.endswith("/")
        line = line.rstrip("/")
        if not line:
            continue
        anchored = "/" in line
        line = line.lstrip("/")
        try:
            pattern = re.compile(_translate(line) + r"\Z", re.DOTALL)
        except re.error:
            continue
        rules.append(Rule(pattern, negate, dir_only, base, anchored))
    return rules


@dataclass(frozen=True)
class IgnoreRules:
    rules: tuple[Rule, ...] = field(default_factory=tuple)

    def with_file(self, text: str, base: str) -> IgnoreRules:
        return IgnoreRules(self.rules + tuple(parse_rules(text, base))) if text else self

    def ignored(self, path: str, *, is_dir: bool) -> bool:
        """Whether `path` (relative to the worktree) is ignored; its parents are not, else it
        would not have been reached."""
        verdict = False
        for rule in self.rules:
            if rule.dir_only and not is_dir:
                continue
            if not path.startswith(rule.base):
                continue
            relative = path[len(rule.base) :]
            subject = relative if rule.anchored else relative.rsplit("/", 1)[-1]
            if rule.pattern.match(subject):
                verdict = not rule.negate
        return verdict

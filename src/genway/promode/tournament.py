"""Pro Mode's tournament: a single-elimination bracket of pairwise judgements.

Why a bracket: Pro Mode needs one winner and the answers closest to it, with the fewest judge
calls on the session's critical path. For N candidates a bracket costs N-1 judge calls in
ceil(log2 N) sequential rounds (the matches of a round run in parallel). A full round robin
ranks everyone but costs N(N-1)/2 calls (28 for 8 candidates); a Swiss system needs about as many
rounds as a bracket with N/2 calls in each (12 for 8 candidates in 3 rounds) to rank the middle
of the field, which Pro Mode then throws away. The bracket's weakness, that one bad judgement
eliminates a strong candidate, is softened by the synthesis, which reads both finalists and the
judge's reasons, and by later iterations, which improve on the result.

Pairing is by position (1 v 2, 3 v 4, ...); with an odd number the last entrant gets a bye.
Everything here is pure except `run_bracket`, whose only effect is the injected judge.
"""

from __future__ import annotations

import asyncio
import json
import math
import re
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Side = Literal["A", "B"]


@dataclass(frozen=True)
class Entrant:
    """One answer in the bracket; `key` names it in events (a candidate's job id). A code
    run's answer is its report, and its code is at `commit`, the head of `branch`."""

    key: str
    text: str
    branch: str | None = None
    commit: str | None = None


@dataclass(frozen=True)
class Verdict:
    winner: Side
    reason: str
    parsed: bool = True


@dataclass(frozen=True)
class Match:
    round: int
    index: int
    a: str
    b: str
    winner: str
    reason: str
    parsed: bool = True

    def as_dict(self) -> dict[str, Any]:
        return {
            "round": self.round,
            "match": self.index,
            "a": self.a,
            "b": self.b,
            "winner": self.winner,
            "reason": self.reason,
            "parsed": self.parsed,
        }


@dataclass
class Bracket:
    rounds: list[list[Match]] = field(default_factory=list)
    byes: list[tuple[int, str]] = field(default_factory=list)
    champion: str = ""
    finalists: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "rounds": [[match.as_dict() for match in matches] for matches in self.rounds],
            "byes": [{"round": number, "key": key} for number, key in self.byes],
            "champion": self.champion,
            "finalists": self.finalists,
        }


Judge = Callable[[Entrant, Entrant], Awaitable[Verdict]]
MatchCallback = Callable[[Match], None]


def rounds_needed(entrants: int) -> int:
    """Sequential judging rounds for a bracket of `entrants`."""
    return math.ceil(math.log2(entrants)) if entrants > 1 else 0


def critical_path_calls(candidates: int, iterations: int) -> int:
    """Model calls one after another in a session: per iteration the candidates (in parallel),
    each bracket round, then the synthesis."""
    return iterations * (1 + rounds_needed(candidates) + 1)


def pairings(entrants: Sequence[Entrant]) -> tuple[list[tuple[Entrant, Entrant]], Entrant | None]:
    """Adjacent pairs, and the entrant with a bye when the count is odd."""
    pairs = [(entrants[i], entrants[i + 1]) for i in range(0, len(entrants) - 1, 2)]
    bye = entrants[-1] if len(entrants) % 2 else None
    return pairs, bye


_JSON_OBJECT = re.compile(r"\{.*\}", re.DOTALL)
_WINNER = re.compile(r"winner\W{0,5}([AB])\b", re.IGNORECASE)


def parse_verdict(text: str) -> Verdict:
    """The judge's choice: a JSON `{"winner", "reason"}`, else a `winner: X` phrase, else A
    (the higher seed) with `parsed=False`, so an unreadable judgement never stops a session."""
    match = _JSON_OBJECT.search(text)
    if match:
        try:
            data = json.loads(match.group(0))
        except ValueError:
            data = None
        if isinstance(data, dict) and str(data.get("winner", "")).strip().upper() in ("A", "B"):
            side: Side = "A" if str(data["winner"]).strip().upper() == "A" else "B"
            return Verdict(side, str(data.get("reason", "")).strip())
    phrase = _WINNER.search(text)
    if phrase:
        return Verdict("A" if phrase.group(1).upper() == "A" else "B", text.strip()[:1000])
    return Verdict("A", f"Unreadable judgement, A kept: {text.strip()[:500]}", parsed=False)


async def run_bracket(
    entrants: Sequence[Entrant], judge: Judge, on_match: MatchCallback | None = None
) -> Bracket:
    """Judge the bracket round by round (the matches of a round concurrently)."""
    if not entrants:
        raise ValueError("a bracket needs at least one entrant")
    bracket = Bracket()
    alive = list(entrants)
    number = 0
    while len(alive) > 1:
        number += 1
        pairs, bye = pairings(alive)
        verdicts = await asyncio.gather(*(judge(a, b) for a, b in pairs))
        matches, winners = [], []
        for index, ((a, b), verdict) in enumerate(zip(pairs, verdicts, strict=True)):
            winner = a if verdict.winner == "A" else b
            match = Match(number, index, a.key, b.key, winner.key, verdict.reason, verdict.parsed)
            matches.append(match)
            winners.append(winner)
            if on_match is not None:
                on_match(match)
        if len(alive) == 2:
            loser = pairs[0][1] if winners[0] is pairs[0][0] else pairs[0][0]
            bracket.finalists = [winners[0].key, loser.key]
        if bye is not None:
            bracket.byes.append((number, bye.key))
            winners.append(bye)
        bracket.rounds.append(matches)
        alive = winners
    bracket.champion = alive[0].key
    if not bracket.finalists:
        bracket.finalists = [alive[0].key]
    return bracket


def judge_reasons(bracket: Bracket) -> list[str]:
    """The judge's reasons, latest round first: what the synthesis and the next iteration need
    to know about why the finalists won."""
    return [match.reason for matches in reversed(bracket.rounds) for match in matches]

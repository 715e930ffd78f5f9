"""The tournament's pure parts: pairing with byes, reading judgements, the bracket itself."""

from __future__ import annotations

import pytest

from genway.promode.tournament import (
    Entrant,
    Verdict,
    critical_path_calls,
    pairings,
    parse_verdict,
    rounds_needed,
    run_bracket,
)


def entrants(*scores: int) -> list[Entrant]:
    return [Entrant(f"e{i}", str(score)) for i, score in enumerate(scores)]


async def higher_score(a: Entrant, b: Entrant) -> Verdict:
    return Verdict("A" if int(a.text) >= int(b.text) else "B", f"{a.key} v {b.key}")


def test_pairings_give_the_odd_one_a_bye():
    pairs, bye = pairings(entrants(1, 2, 3, 4, 5))
    assert [(a.key, b.key) for a, b in pairs] == [("e0", "e1"), ("e2", "e3")]
    assert bye is not None and bye.key == "e4"
    assert pairings(entrants(1, 2))[1] is None


@pytest.mark.parametrize(
    ("text", "winner", "parsed"),
    [
        ('{"winner": "B", "reason": "clearer"}', "B", True),
        ('Sure!\n```json\n{"winner": "a", "reason": "r"}\n```', "A", True),
        ("After thought, the winner: B because it compiles", "B", True),
        ("I cannot decide", "A", False),
        ('{"winner": "C"}', "A", False),
    ],
)
def test_parse_verdict(text: str, winner: str, parsed: bool):
    verdict = parse_verdict(text)
    assert (verdict.winner, verdict.parsed) == (winner, parsed)


async def test_bracket_of_five_with_byes():
    seen: list[str] = []
    bracket = await run_bracket(
        entrants(3, 9, 4, 1, 7), higher_score, lambda m: seen.append(m.winner)
    )
    rounds = [[(m.a, m.b, m.winner) for m in r] for r in bracket.rounds]
    assert rounds == [
        [("e0", "e1", "e1"), ("e2", "e3", "e2")],
        [("e1", "e2", "e1")],
        [("e1", "e4", "e1")],
    ]
    assert bracket.byes == [(1, "e4"), (2, "e4")]
    assert bracket.champion == "e1" and bracket.finalists == ["e1", "e4"]
    assert seen == ["e1", "e2", "e1", "e1"]
    assert bracket.as_dict()["rounds"][2][0]["reason"] == "e1 v e4"


async def test_single_entrant_is_champion_without_judging():
    async def never(a: Entrant, b: Entrant) -> Verdict:
        raise AssertionError("no match to judge")

    bracket = await run_bracket(entrants(5), never)
    assert bracket.champion == "e0" and bracket.finalists == ["e0"] and bracket.rounds == []


def test_critical_path():
    assert [rounds_needed(n) for n in (1, 2, 3, 4, 5, 8, 9)] == [0, 1, 2, 2, 3, 3, 4]
    assert critical_path_calls(8, 2) == 10 and critical_path_calls(4, 2) == 8

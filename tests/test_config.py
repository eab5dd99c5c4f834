"""`shiftlens.config.setting`: mutable defaults are fresh per instance; identity and summary split by field."""

from __future__ import annotations

from dataclasses import dataclass

from shiftlens.config import identity, setting, summary


@dataclass
class Toy:
    words: list[str] = setting(["a"], "words")
    mode: str = setting("x", "speed only", identity=False)


def test_mutable_defaults_are_not_shared_between_instances() -> None:
    first, second = Toy(), Toy()
    first.words.append("b")
    assert second.words == ["a"] and Toy().words == ["a"]


def test_identity_and_summary_split_the_fields() -> None:
    assert identity(Toy()) == {"words": ["a"]} and summary(Toy()) == {"mode": "x"}

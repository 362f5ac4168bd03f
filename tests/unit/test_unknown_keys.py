"""Unknown API keys are remembered for a short time, and only so many of them."""

from __future__ import annotations

from graph.protection.refused_keys import UnknownKeys


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_an_unknown_key_is_remembered_until_it_expires() -> None:
    ticks = Ticks()
    unknown = UnknownKeys(ttl_seconds=30, clock=ticks)
    unknown.add(b"digest")
    ticks.now = 29.9
    assert b"digest" in unknown
    ticks.now = 30.0
    assert b"digest" not in unknown


def test_the_oldest_unknown_keys_are_forgotten_past_the_bound() -> None:
    unknown = UnknownKeys(max_entries=2, clock=Ticks())
    for digest in (b"a", b"b", b"c"):
        unknown.add(digest)
    assert b"a" not in unknown
    assert b"b" in unknown
    assert b"c" in unknown

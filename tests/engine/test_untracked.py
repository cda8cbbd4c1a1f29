"""The writer's memory of recent keys (engine.untracked.RecentKeys): the same answers as a dict
that drops its older half, and nothing in it for the cyclic collector to walk."""

from __future__ import annotations

import gc

from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.engine.untracked import KeptAnswer, RecentKeys


def _answer(n: int) -> KeptAnswer:
    return (f"body-{n}", n, "deposit", 1_000 + n, f"hash-{n}")


@settings(max_examples=200, deadline=None)
@given(
    capacity=st.integers(min_value=2, max_value=12),
    groups=st.lists(st.integers(min_value=0, max_value=7), max_size=30),
)
def test_recent_keys_answer_as_a_dict_that_drops_its_older_half(capacity: int, groups: list[int]) -> None:
    """Model: insertion-ordered dict; when a key arrives with both halves full, the oldest half
    goes. Every key held answers as it was told, every dropped key is handed back, once, oldest
    first, and no more than the capacity is ever held."""
    half = capacity // 2
    kept = RecentKeys(capacity)
    model: dict[str, KeptAnswer] = {}
    handed_back: list[str] = []
    dropped_by_model: list[str] = []
    n = 0
    for size in groups:
        group = {f"k{n + j}": _answer(n + j) for j in range(size)}
        n += size
        for key, answer in group.items():
            if len(model) == 2 * half:
                oldest = list(model)[:half]
                dropped_by_model.extend(oldest)
                for old in oldest:
                    del model[old]
            model[key] = answer
        handed_back.extend(kept.update(group))
        assert len(kept) == len(model) <= capacity
        assert handed_back == dropped_by_model
        for key, answer in model.items():
            assert key in kept
            assert kept.get(key) == answer
        for key in dropped_by_model:
            assert key not in kept
            assert kept.get(key) is None


def test_a_key_taken_again_is_not_dropped_with_its_old_slot() -> None:
    """A key given again takes a new slot; dropping the half of its old slot leaves it held."""
    kept = RecentKeys(4)  # two halves of two slots
    kept.update({"a": _answer(1), "b": _answer(2), "c": _answer(3)})
    assert kept.update({"c": _answer(4)}) == []  # slot 3; its old slot 2 stays c's in name only
    assert kept.update({"e": _answer(5)}) == ["a", "b"]  # slot 0
    assert kept.update({"f": _answer(6)}) == []  # slot 1
    assert kept.update({"g": _answer(7)}) == ["c"]  # slot 2: slots 2-3 dropped, c (in 3) with them
    assert "c" not in kept and len(kept) == 3
    kept = RecentKeys(4)
    kept.update({"a": _answer(1), "b": _answer(2)})
    kept.update({"a": _answer(3)})  # slot 2: now a's
    assert kept.update({"d": _answer(4), "e": _answer(5)}) == ["b"]  # slots 0-1 refilled; a is in 2
    assert kept.get("a") == _answer(3) and "b" not in kept


def test_remembering_keys_leaves_nothing_for_the_collector() -> None:
    """The point of the structure (module docstring): remembering 20,000 answers adds no object
    the cyclic collector tracks (a dict of (body hash, Ack) tuples added two per key), and its
    index is a dict the collector does not track."""
    kept = RecentKeys(50_000)
    answers = {f"key-{n}": _answer(n) for n in range(20_000)}
    gc.collect()
    before = len(gc.get_objects())
    kept.update(answers)
    del answers
    gc.collect()
    assert len(gc.get_objects()) - before < 10
    assert not gc.is_tracked(kept._slot_of)

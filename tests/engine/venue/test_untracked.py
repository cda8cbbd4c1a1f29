"""The writer's memory of recent keys (engine.venue.untracked.RecentKeys): the same answers as a dict
that drops its older half, and nothing in it for the cyclic collector to walk."""

from __future__ import annotations

import gc

from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.engine.venue.untracked import KeptAnswer, RecentKeys


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
        for dropped_half in kept.update(group):  # each dropped half's index, keys in slot order
            handed_back.extend(dropped_half.keys)
            assert dropped_half.through == max(int(key[1:]) for key in dropped_half.keys)  # _answer(n): n
        assert len(kept) == len(model) <= capacity
        assert handed_back == dropped_by_model
        for key, answer in model.items():
            assert key in kept
            assert kept.get(key) == answer
        for key in dropped_by_model:
            assert key not in kept
            assert kept.get(key) is None
        assert kept.answers([*dropped_by_model, *model, "never"]) == model  # what the writer asks


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(min_value=2, max_value=8),
    keys=st.lists(st.integers(min_value=0, max_value=5), min_size=1, max_size=40),
)
def test_a_key_given_again_is_never_answered_wrongly(capacity: int, keys: list[int]) -> None:
    """The venue gives a key again only after it left memory (found in the log), but whatever
    the order: a held key answers with the last answer given for it (its slot in the newer half
    while the older still holds the first), never with another key's fields."""
    kept = RecentKeys(capacity)
    last: dict[str, KeptAnswer] = {}
    for n, k in enumerate(keys):
        key = f"k{k}"
        last[key] = _answer(n)
        kept.update({key: last[key]})
        for held in last:
            answer = kept.get(held)
            assert answer is None or answer == last[held]
        assert kept.get(key) == last[key]  # the one just given is held, with its newest answer
        assert len(kept) <= capacity
    assert kept.answers(list(last)) == {k: last[k] for k in last if k in kept}


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
    assert not any(gc.is_tracked(half) for half in kept._slot_of)

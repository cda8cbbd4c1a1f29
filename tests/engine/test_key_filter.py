"""The filter of idempotency keys in the log never forgets a key (a false negative would apply a
retried command twice) and rarely claims one it never saw (each costs one store lookup)."""

from __future__ import annotations

import uuid

from hypothesis import given
from hypothesis import strategies as st

from crossmargin.engine.key_filter import KeyFilter


@given(st.lists(st.lists(st.text(max_size=40), max_size=50), max_size=20))
def test_every_key_added_is_held_across_groups_and_stages(groups: list[list[str]]) -> None:
    keys = KeyFilter(first_capacity=16)  # small stages: a few groups open several
    for group in groups:
        keys.add(group)
    added = [k for group in groups for k in group]
    assert all(keys.may_hold(added))
    assert keys.count == len(added)


def test_fresh_keys_are_ruled_out_at_the_designed_rate() -> None:
    keys = KeyFilter(first_capacity=1 << 14)
    written = [uuid.uuid4().hex for _ in range(100_000)]  # fills 3 stages (16k, 32k, 64k)
    for start in range(0, len(written), 300):
        keys.add(written[start : start + 300])
    fresh = [uuid.uuid4().hex for _ in range(100_000)]
    false_positives = sum(keys.may_hold(fresh))
    # ~1e-4 per full stage (20 bits a key, 14 probes): a few in 100k; 50 would mean a broken hash
    assert false_positives <= 50
    assert keys.nbytes <= 2.6 * (1 << 14) * 7  # 2.5 bytes a key of capacity


def test_an_empty_filter_holds_nothing() -> None:
    assert KeyFilter().may_hold(["a", "b"]) == [False, False]
    assert KeyFilter().may_hold([]) == []

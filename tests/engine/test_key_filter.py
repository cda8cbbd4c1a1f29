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


@given(
    st.lists(st.lists(st.text(max_size=20), max_size=30), max_size=12),
    st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=20),
)
def test_keys_added_later_are_held_before_during_and_after_absorbing(
    groups: list[list[str]], steps: list[int]
) -> None:
    """`add_later` holds keys exactly from the moment it is called, `absorb` hashes them in a
    slice at a time, and at no point is a key added not held (a false negative would apply a
    retried command twice)."""
    keys = KeyFilter(first_capacity=16)
    added: list[str] = []
    for n, group in enumerate(groups):
        keys.add_later(dict.fromkeys(group, 0))  # as the writer hands a dropped half's index
        added.extend(group)
        assert all(keys.may_hold(added))
        waiting = keys.waiting
        left = keys.absorb(steps[n % len(steps)])
        assert left == keys.waiting == max(0, waiting - steps[n % len(steps)])
        assert all(keys.may_hold(added))
    assert keys.absorb() == 0 == keys.waiting
    assert all(keys.may_hold(added))
    assert keys.count == sum(len(set(group)) for group in groups)


def test_absorbed_keys_leave_the_exact_hold_for_the_bits() -> None:
    """Once absorbed, a collection is let go: only the Bloom bits hold its keys (fresh keys are
    then ruled out at the filter's rate, not by the exact hold)."""
    keys = KeyFilter(first_capacity=1 << 12)
    written = {uuid.uuid4().hex: 0 for _ in range(3_000)}
    keys.add_later(written)
    assert keys.waiting == 3_000 and keys.nbytes == 0  # nothing hashed in yet
    assert keys.absorb(1_000) == 2_000
    assert keys.absorb() == 0
    assert not keys._waiting  # let go
    assert all(keys.may_hold(list(written)))
    assert sum(keys.may_hold([uuid.uuid4().hex for _ in range(20_000)])) <= 10

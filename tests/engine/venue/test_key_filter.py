"""The filter of idempotency keys in the log never forgets a key (a false negative would apply a
retried command twice) and rarely claims one it never saw (each costs one store lookup); its image,
as a snapshot carries it, restores in another process with the same bits."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
import uuid

import pytest
from hypothesis import given
from hypothesis import strategies as st

from crossmargin.engine.venue.key_filter import KeyFilter, KeyFilterImage


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


@given(
    st.lists(st.lists(st.text(max_size=20), max_size=30), max_size=12),
    st.integers(min_value=0, max_value=12),
)
def test_an_image_restored_holds_every_key_hashed_in_and_says_through_which_record(
    groups: list[list[str]], absorbed: int
) -> None:
    """Collections handed over in log order (group n: records up to 10·(n+1)); `through` moves
    to a collection's newest record only once it is wholly hashed in, and an image (through its
    JSON form, as a snapshot carries it) restored into a new filter holds every key hashed in."""
    keys = KeyFilter(first_capacity=16)
    keys.add(["genesis-era"], through=1)
    for n, group in enumerate(groups):
        keys.add_later(dict.fromkeys(group, 0), through=10 * (n + 1))
    keys.absorb(sum(len(set(group)) for group in groups[:absorbed]))
    hashed_in = [k for group in groups[: min(absorbed, len(groups))] for k in group]
    nonempty = [10 * (n + 1) for n, group in enumerate(groups[:absorbed]) if group]
    assert keys.through == max([1, *nonempty])
    restored = KeyFilter()
    restored.restore(KeyFilterImage.from_dict(json.loads(json.dumps(keys.image().to_dict()))))
    assert restored.through == keys.through
    assert restored.count == 1 + sum(len(set(group)) for group in groups[:absorbed])  # keys hashed in
    assert restored.missing(["genesis-era", *hashed_in]) is None
    assert all(restored.may_hold(["genesis-era", *hashed_in]))


def test_the_hash_is_the_same_in_every_process() -> None:
    """A snapshot's filter is read by another process: the bits must not depend on the per-process
    seed of `hash()` (two interpreters with different PYTHONHASHSEED agree, and agree with this one)."""
    script = (
        "import hashlib; from crossmargin.engine.venue.key_filter import KeyFilter; f = KeyFilter(1 << 10); "
        "f.add(['d1', 'order-\\u00e9', 'x' * 200]); "
        "print(hashlib.sha256(b''.join(s.bits.tobytes() for s in f.image().stages)).hexdigest())"
    )
    digests = {
        subprocess.run(
            [sys.executable, "-c", script],
            env={**os.environ, "PYTHONHASHSEED": seed},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for seed in ("1", "2")
    }
    here = KeyFilter(1 << 10)
    here.add(["d1", "order-\u00e9", "x" * 200])
    assert digests == {hashlib.sha256(b"".join(s.bits.tobytes() for s in here.image().stages)).hexdigest()}


def test_an_image_of_another_layout_is_refused_naming_it() -> None:
    image = KeyFilter().image().to_dict()
    with pytest.raises(ValueError, match=r"another layout \('sip', 20, 14\)"):
        KeyFilterImage.from_dict({**image, "hash": "sip"})
    short = KeyFilter(16)
    short.add(["a"])
    data = short.image().to_dict()
    data["stages"][0]["capacity"] = 32  # the bits of a 16-key stage
    with pytest.raises(ValueError, match="stage 0: 40 bytes, 1 keys of 32"):
        KeyFilterImage.from_dict(data)


def test_missing_names_the_first_key_the_bits_lack() -> None:
    keys = KeyFilter(1 << 10)
    keys.add(["a", "b"])
    assert keys.missing(["a", "never", "b", "nor"]) == 1
    assert keys.missing(["b", "a"]) is None and keys.missing([]) is None


def test_image_with_the_memorys_keys_is_exact_through_the_snapshot() -> None:
    """A snapshot child's copy: the waiting keys and the memory's hashed in, `through` the
    snapshot's record; the image holds every key written."""
    keys = KeyFilter(first_capacity=16)
    keys.add(["g"], through=1)
    keys.add_later({"a": 0, "b": 1, "c0": 2}, through=3)  # let go by memory, not hashed in yet
    keys.absorb(1)
    assert keys.pending() == ["b", "c0"]  # in the order absorb takes them
    image = keys.image_with(["c", "d"], through=5)  # still in memory at the snapshot
    assert (image.through, image.count, keys.waiting, keys.pending()) == (5, 6, 0, [])
    restored = KeyFilter()
    restored.restore(image)
    assert restored.missing(["g", "a", "b", "c0", "c", "d"]) is None

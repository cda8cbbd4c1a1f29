"""AccountIds: the first n ids of a shared append-only list. Every view keeps answering as the
tuple it was made as, whatever growth or fork happens after it."""

from __future__ import annotations

import pickle

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.account_ids import AccountIds


def _check_as_tuple(ids: AccountIds, expected: tuple[str, ...]) -> None:
    assert len(ids) == len(expected)
    assert tuple(ids) == expected and list(ids) == list(expected)
    assert ids == expected and ids == list(expected)
    assert hash(ids) == hash(expected)
    assert ids[:] == expected and ids[1::2] == expected[1::2] and ids[-3:] == expected[-3:]
    if expected:
        assert ids[-1] == expected[-1] and ids[0] == expected[0]
        assert ids.gather([len(expected) - 1, 0]) == (expected[-1], expected[0])
        assert ids.gather([0]) == (expected[0],)
    with pytest.raises(IndexError):
        _ = ids[len(expected)]
    for name in expected:
        assert ids.index(name) == expected.index(name) and name in ids
    assert pickle.loads(pickle.dumps(ids)) == expected


@settings(max_examples=60, deadline=None)
@given(
    steps=st.lists(
        st.tuples(st.integers(0, 50), st.lists(st.sampled_from("abcdefgh"), max_size=3)), max_size=12
    )
)
def test_every_view_stays_the_tuple_it_was_made_as(steps: list[tuple[int, list[str]]]) -> None:
    """Random growths, each from any earlier view (the latest: an append to the shared list;
    an older one: a fork). Names may repeat: the sequence does not police uniqueness (the book
    does)."""
    views: list[tuple[AccountIds, tuple[str, ...]]] = [(AccountIds(["root"]), ("root",))]
    for pick, new in steps:
        base, expected = views[pick % len(views)]
        views.append((base.grown(new), expected + tuple(new)))
    for ids, expected in views:
        _check_as_tuple(ids, expected)


def test_growth_from_the_latest_view_appends_without_a_copy() -> None:
    first = AccountIds(["a", "b"])
    second = first.grown(["c"])
    third = second.grown(["d", "e"])
    assert second.shares_storage(first) and third.shares_storage(first)  # one list, three prefixes
    fork = second.grown(["x"])  # second is no longer the longest prefix: a copy
    assert not fork.shares_storage(first)
    assert fork == ("a", "b", "c", "x") and third == ("a", "b", "c", "d", "e")
    assert "d" not in second and "x" not in third
    with pytest.raises(ValueError):
        second.index("d")
    assert AccountIds.of(third) is third and AccountIds.of(("a",)) == ("a",)

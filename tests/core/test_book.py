"""Book.with_new_accounts: accounts that hold nothing appended to a book equal the same book built
from arrays with those accounts, and hand over the memos that stay valid."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.book import Book
from crossmargin.core.synthetic import SynthSpec, synth_book
from crossmargin.errors import InputError


def test_new_accounts_are_empty_rows_after_the_others() -> None:
    book = synth_book(SynthSpec(n_accounts=200, seed=3))
    _ = (book.entry_term, book.haircut_units, book.balance_csr)  # memos the new book inherits
    grown = book.with_new_accounts(["new-1", "new-2"])
    built = Book.from_arrays(
        account_ids=[*book.account_ids, "new-1", "new-2"],
        assets=book.assets,
        instruments=book.instruments,
        account_index=book.position_account,
        instrument_index=book.positions.indices,
        quantity=book.positions.data,
        entry_price=book.entry_price,
        balances=np.vstack([book.balances, np.zeros((2, book.assets.n_assets))]),
    )
    assert grown.account_ids == built.account_ids
    np.testing.assert_array_equal(grown.positions.indptr, built.positions.indptr)
    np.testing.assert_array_equal(grown.positions.indices, built.positions.indices)
    np.testing.assert_array_equal(grown.positions.data, built.positions.data)
    np.testing.assert_array_equal(grown.balances, built.balances)
    assert grown.memo.entry_term is book.memo.entry_term  # positions unchanged: shared
    np.testing.assert_array_equal(grown.haircut_units, built.haircut_units)
    for mine, theirs in zip(grown.balance_csr, built.balance_csr, strict=True):
        np.testing.assert_array_equal(mine, theirs)
    assert grown.account_row("new-2") == 201 and grown.account_row(book.account_ids[5]) == 5
    with pytest.raises(InputError, match="already in the book"):
        grown.with_new_accounts([book.account_ids[0]])
    with pytest.raises(InputError, match="already in the book"):
        book.with_new_accounts(["x", "x"])


def test_growth_reuses_its_buffers_and_leaves_every_earlier_book_as_it_was() -> None:
    """Grown books share the rows they grow into (no O(accounts) copy per growth) and the id
    index; each book, earlier ones and a second growth from the same book included, still answers
    for its own accounts only, with zero read-only balance rows for the new ones."""
    book = synth_book(SynthSpec(n_accounts=50, seed=5))
    _ = book.haircut_units
    first = book.with_new_accounts(["a"])
    second = first.with_new_accounts(["b", "c"])
    assert np.shares_memory(first.balances, second.balances)  # grown in place of a copy
    assert second.ids.shares_storage(first.ids) and second.ids.shares_storage(book.ids)  # ids too
    assert np.shares_memory(first.positions.indptr, second.positions.indptr)  # and the indptr
    assert not second.positions.indptr.flags.writeable
    assert book.account_ids == book.ids[:50] and len(first.account_ids) == 51  # each its own prefix
    assert np.shares_memory(first.haircut_units, second.haircut_units)
    assert not second.balances.flags.writeable and not second.haircut_units.flags.writeable
    np.testing.assert_array_equal(second.balances[:50], book.balances)
    assert not second.balances[50:].any() and not second.haircut_units[50:].any()
    assert [second.account_row(a) for a in ("a", "b", "c")] == [50, 51, 52]
    for earlier in (book, first):
        with pytest.raises(InputError, match="unknown account 'b'"):
            earlier.account_row("b")
    with pytest.raises(InputError, match="unknown account 'a'"):
        book.account_row("a")
    # Two growths from one book: each holds its own accounts, at its own rows.
    left, right = first.with_new_accounts(["x"]), first.with_new_accounts(["z", "x"])
    assert left.account_row("x") == 51 and right.account_row("x") == 52 and right.account_row("z") == 51
    with pytest.raises(InputError, match="unknown account 'z'"):
        left.account_row("z")
    assert second.account_row("b") == 51  # untouched by its siblings' entries
    assert first.with_new_accounts(["b"]).account_row("b") == 51  # "b" is second's, not first's
    assert left.balances.shape == (52, book.assets.n_assets) and not left.balances[50:].any()
    # Every book's indptr is still its own: empty rows after the original 50, whatever grew later
    # (the forks from `first` copied: only a line's latest book grows its indptr in place).
    nnz = book.positions.nnz
    for grown, rows in ((first, 51), (second, 53), (left, 52), (right, 53)):
        np.testing.assert_array_equal(grown.positions.indptr[:51], book.positions.indptr)
        assert grown.positions.indptr.shape == (rows + 1,) and (grown.positions.indptr[51:] == nnz).all()
    assert not np.shares_memory(left.positions.indptr, second.positions.indptr)


@settings(max_examples=60, deadline=None)
@given(steps=st.lists(st.tuples(st.integers(0, 50), st.integers(0, 3)), max_size=12))
def test_grown_pointers_leave_every_earlier_view_as_it_was(steps: list[tuple[int, int]]) -> None:
    """Random growths of an indptr, each from any earlier (view, buffer) pair: the latest grows
    in place, any other copies; every view keeps its own pointers."""
    from crossmargin.core.book import grown_pointers

    start = np.array([0, 2, 2, 5], dtype=np.int64)
    views = [(start, None, start.copy())]
    for pick, n in steps:
        view, held, _ = views[pick % len(views)]
        grown, held_after = grown_pointers(view, n, held)
        views.append((grown, held_after, np.concatenate([view, np.full(n, view[-1])])))
        for older, _, expected in views:
            np.testing.assert_array_equal(older, expected)


@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_rows_replaced_equal_the_book_built_afresh(data: st.DataObject) -> None:
    """`with_rows_replaced` (a splice by masks) against the same holdings built from arrays: the
    same CSR, entry prices and balances, and memos (entry terms, haircut units) equal to a fresh
    book's, whether or not the old book had them."""
    book = synth_book(SynthSpec(n_accounts=data.draw(st.integers(1, 40)), seed=data.draw(st.integers(0, 9))))
    if data.draw(st.booleans()):
        _ = (book.entry_term, book.haircut_units)
    rows = np.array(
        sorted(data.draw(st.sets(st.integers(0, book.n_accounts - 1), max_size=6))), dtype=np.int64
    )
    donors = np.array([data.draw(st.integers(0, book.n_accounts - 1)) for _ in rows], dtype=np.int64)
    # The part: each replaced account takes a donor's positions and balances (any count, 0 included).
    taken = [book.select([d]) for d in donors.tolist()]
    part = _stacked(book, [book.account_ids[r] for r in rows.tolist()], taken)
    spliced = book.with_rows_replaced(rows, part)
    whose = {int(r): k for k, r in enumerate(rows.tolist())}
    parts = [taken[whose[a]] if a in whose else book.select([a]) for a in range(book.n_accounts)]
    built = _stacked(book, list(book.account_ids), parts)
    for name in ("indptr", "indices", "data"):
        np.testing.assert_array_equal(getattr(spliced.positions, name), getattr(built.positions, name))
    assert spliced.positions.indices.dtype == built.positions.indices.dtype
    np.testing.assert_array_equal(spliced.entry_price, built.entry_price)
    np.testing.assert_array_equal(spliced.balances, built.balances)
    assert spliced.entry_term.tobytes() == built.entry_term.tobytes()
    assert spliced.haircut_units.tobytes() == built.haircut_units.tobytes()
    assert not spliced.positions.indptr.flags.writeable


def _stacked(like: Book, ids: list[str], parts: list[Book]) -> Book:
    """One-account books, one after the other, as a book built from arrays (the reference)."""
    owner = [k for k, p in enumerate(parts) for _ in range(p.positions.nnz)]
    return Book.from_arrays(
        account_ids=ids,
        assets=like.assets,
        instruments=like.instruments,
        account_index=np.array(owner, dtype=np.int64),
        instrument_index=np.concatenate([p.positions.indices for p in [like.select([]), *parts]]).astype(
            np.int64
        ),
        quantity=np.concatenate([p.positions.data for p in [like.select([]), *parts]]),
        entry_price=np.concatenate([p.entry_price for p in [like.select([]), *parts]]),
        balances=np.vstack([like.balances[:0], *(p.balances for p in parts)]),
    )


def test_rows_replaced_refuses_a_part_that_does_not_fit() -> None:
    book = synth_book(SynthSpec(n_accounts=10, seed=1))
    part = book.select([3, 5])
    with pytest.raises(InputError, match="ascending"):
        book.with_rows_replaced(np.array([5, 3]), part)
    with pytest.raises(InputError, match="ids of the replaced rows"):
        book.with_rows_replaced(np.array([3, 6]), part)
    with pytest.raises(InputError, match="out of range"):
        book.with_rows_replaced(np.array([3, 10]), part)
    assert book.with_rows_replaced(np.array([3, 5]), part).balances.tobytes() == book.balances.tobytes()


def test_a_book_in_growth_buffers_is_spliced_into_buffers_the_next_growth_takes() -> None:
    """A venue's book lives in growth buffers (reserved at warm-up); a fold splices it into new
    buffers with room, so that the sign-up after a fold grows in place (no copy), and the books
    before the fold keep their numbers."""
    book = synth_book(SynthSpec(n_accounts=40, seed=5))
    _ = book.haircut_units
    grown = book.with_new_accounts([])  # reserved: balances, units and indptr in buffers
    before = (grown.balances.copy(), grown.positions.indptr.copy(), grown.haircut_units.copy())
    part = grown.select([3, 7])
    spliced = grown.with_rows_replaced(np.array([3, 7]), part)
    assert {"balances", "haircut_units"} <= set(spliced.memo.row_buffers) and "positions" in spliced.memo.pointer_buffers
    signed_up = spliced.with_new_accounts(["new"])
    assert np.shares_memory(signed_up.balances, spliced.balances)
    assert np.shares_memory(signed_up.haircut_units, spliced.haircut_units)
    assert np.shares_memory(signed_up.positions.indptr, spliced.positions.indptr)
    np.testing.assert_array_equal(signed_up.balances[:40], grown.balances)
    np.testing.assert_array_equal(signed_up.balances[40], 0.0)
    assert signed_up.positions.indptr[-1] == signed_up.positions.indptr[-2] == grown.positions.indptr[-1]
    for kept, was in zip((grown.balances, grown.positions.indptr, grown.haircut_units), before, strict=True):
        np.testing.assert_array_equal(kept, was)
    # A book not in buffers splices into plain arrays (nothing reserved for it).
    assert book.with_rows_replaced(np.array([3]), book.select([3])).memo.row_buffers == {}

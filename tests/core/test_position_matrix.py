"""core.position_matrix: the book's positions hold exactly the arrays (values and index dtype)
that scipy.sparse.csr_array would, so every kernel reads what it read before scipy left the
import path; to_scipy() is that scipy matrix."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core.position_matrix import PositionMatrix
from crossmargin.core.synthetic import SynthSpec, synth_book


@st.composite
def canonical_csr(draw: st.DrawFn) -> tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]:
    n_rows = draw(st.integers(0, 12))
    n_cols = draw(st.integers(0, 9))
    rows: list[list[int]] = [sorted(draw(st.sets(st.integers(0, max(n_cols - 1, 0)), max_size=n_cols))) for _ in range(n_rows)]
    indptr = np.zeros(n_rows + 1, dtype=draw(st.sampled_from([np.int32, np.int64])))
    np.cumsum([len(r) for r in rows], out=indptr[1:])
    indices = np.array([c for r in rows for c in r], dtype=draw(st.sampled_from([np.int32, np.int64])))
    data = np.array(
        draw(st.lists(st.floats(-1e6, 1e6).filter(bool), min_size=indices.size, max_size=indices.size)),
        dtype=np.float64,
    )
    return data, indices, indptr, (n_rows, n_cols)


@settings(max_examples=200, deadline=None)
@given(canonical_csr())
def test_arrays_and_index_dtype_are_scipys(parts: tuple[np.ndarray, np.ndarray, np.ndarray, tuple[int, int]]) -> None:
    data, indices, indptr, shape = parts
    ours = PositionMatrix.of(data, indices, indptr, shape)
    theirs = sp.csr_array((data, indices, indptr), shape=shape)
    for name in ("data", "indices", "indptr"):
        mine, scipy_array = getattr(ours, name), getattr(theirs, name)
        assert mine.dtype == scipy_array.dtype, name
        np.testing.assert_array_equal(mine, scipy_array)
    assert ours.shape == theirs.shape
    assert ours.nnz == theirs.nnz
    np.testing.assert_array_equal(ours.toarray(), theirs.toarray())
    converted = ours.to_scipy()
    np.testing.assert_array_equal(converted.toarray(), theirs.toarray())
    assert converted.indices.dtype == theirs.indices.dtype


def test_indices_are_int64_when_a_dimension_does_not_fit_int32() -> None:
    wide = PositionMatrix.of(np.array([1.0]), np.array([0]), np.array([0, 1]), (1, 2**31))
    assert wide.indices.dtype == np.int64 and wide.indptr.dtype == np.int64
    narrow = PositionMatrix.of(np.array([1.0]), np.array([0], np.int32), np.array([0, 1], np.int32), (1, 2**31 - 1))
    assert narrow.indices.dtype == np.int32 and narrow.indptr.dtype == np.int32
    mixed = PositionMatrix.of(np.array([1.0]), np.array([0], np.int32), np.array([0, 1], np.int64), (1, 3))
    assert mixed.indices.dtype == np.int64  # as a csr_array: an int64 input widens both


@pytest.mark.parametrize("rows", [[0, 2, 5], [7, 1], []])
def test_a_books_selection_and_products_match_scipys(rows: list[int]) -> None:
    book = synth_book(SynthSpec(n_accounts=40, seed=11))
    selected = book.select(rows)
    whole = book.positions.to_scipy()
    np.testing.assert_array_equal(selected.positions.toarray(), whole.toarray()[rows])
    weights = np.arange(book.instruments.n_instruments, dtype=np.float64)
    np.testing.assert_allclose(whole @ weights, book.positions.toarray() @ weights, rtol=1e-12)

"""`core.sparse_columns.replace_rows`: a column pattern with some rows' entries replaced, against
the pattern built afresh from the final (row, column) pairs, compiled and interpreted."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.core import jit
from crossmargin.core.sparse_columns import replace_rows


def _columns(indptr: np.ndarray, indices: np.ndarray) -> list[list[int]]:
    return [sorted(indices[indptr[c] : indptr[c + 1]].tolist()) for c in range(indptr.size - 1)]


def _pattern(pairs: set[tuple[int, int]], n_columns: int) -> tuple[np.ndarray, np.ndarray]:
    ordered = sorted(pairs, key=lambda rc: (rc[1], rc[0]))
    indptr = np.zeros(n_columns + 1, dtype=np.int32)
    np.cumsum(np.bincount([c for _, c in ordered], minlength=n_columns), out=indptr[1:])
    return indptr, np.array([r for r, _ in ordered], dtype=np.int32)


@pytest.mark.parametrize("mode", ["python", "numba"])
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_replaced_rows_equal_the_pattern_built_afresh(mode: str, data: st.DataObject) -> None:
    n_rows = data.draw(st.integers(1, 12))
    n_columns = data.draw(st.integers(1, 6))
    cell = st.tuples(st.integers(0, n_rows - 1), st.integers(0, n_columns - 1))
    before = data.draw(st.sets(cell, max_size=30))
    rows = sorted(data.draw(st.sets(st.integers(0, n_rows - 1), max_size=n_rows)))
    added = data.draw(st.sets(cell, max_size=20))
    added = {(r, c) for r, c in added if r in rows}  # only the replaced rows get new entries
    indptr, indices = _pattern(before, n_columns)
    new = sorted(added)
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jit, "environment_mode", lambda: mode)
        out_indptr, out_indices = replace_rows(
            indptr,
            indices,
            n_rows,
            np.array(rows, dtype=np.int64),
            np.array([r for r, _ in new], dtype=np.int64),
            np.array([c for _, c in new], dtype=np.int64),
        )
    after = {(r, c) for r, c in before if r not in rows} | added
    assert _columns(out_indptr, out_indices) == _columns(*_pattern(after, n_columns))
    assert out_indptr.dtype == indptr.dtype and out_indices.dtype == indices.dtype

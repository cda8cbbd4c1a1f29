"""The book's positions as a compressed sparse row (CSR) matrix, without scipy.

    data[indptr[a]:indptr[a+1]]     account a's signed quantities, contracts
    indices[indptr[a]:indptr[a+1]]  their instrument columns, ascending, no duplicates

The arrays `scipy.sparse.csr_array` holds (https://docs.scipy.org/doc/scipy/reference/generated/
scipy.sparse.csr_array.html), with the index dtype it would choose, so every kernel sees the same
arrays. Why not the scipy object itself: importing any scipy submodule costs ~0.3 s of every
command's start-up (scipy 1.15-1.17 clone numpy's namespace for the array API, importing
numpy.f2py, numpy.ma and the rest; bench/bench_startup.py), more than a margin run of the example
book, and the kernels read the three arrays only. Matrix algebra (`positions @ weights`) is the
few callers' business: `to_scipy()` imports scipy then.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    import scipy.sparse as sp

FloatArray = npt.NDArray[np.float64]
INT32_MAX = int(np.iinfo(np.int32).max)


def read_only(array: npt.NDArray[Any]) -> npt.NDArray[Any]:
    """`array` itself when read-only, else a read-only view of it (no copy). For the arrays a book
    hands to kernels that a grown book hands out as read-only views of its growth buffers: numba
    types a read-only array apart from a writable one and compiles a kernel once per type, so a
    book that was writable before its first growth and read-only after compiled (or, with a warm
    disk cache, loaded) a second build of every cross and position-run kernel inside a tick:
    0.3-1.3 s on a fresh install (AMD Zen 5, 1M accounts)."""
    if not array.flags.writeable:
        return array
    view = array.view()
    view.flags.writeable = False
    return view


@dataclass(frozen=True, slots=True, eq=False)
class PositionMatrix:
    """(accounts x instruments) CSR of signed quantities in canonical form (module docstring).
    Build with `PositionMatrix.of`; the arrays are the caller's (no copy)."""

    data: FloatArray
    # int32 or int64 (`of`), typed loosely as scipy's were: callers pass them on to kernels
    # typed for either.
    indices: npt.NDArray[Any]
    indptr: npt.NDArray[Any]
    shape: tuple[int, int]

    @classmethod
    def of(
        cls,
        data: npt.ArrayLike,
        indices: npt.ArrayLike,
        indptr: npt.ArrayLike,
        shape: tuple[int, int],
    ) -> PositionMatrix:
        """The matrix of these arrays, indices and indptr in the index dtype a csr_array gives
        them (scipy 1.15-1.17 `get_index_dtype`, contents unchecked for sparse arrays): int32 if
        both arrays' dtypes cast to int32 and a non-empty shape fits it, else int64. The arrays
        are held read-only (`read_only`), as a grown book's indptr always is
        (`book.grown_pointers`)."""
        columns, pointers = np.asarray(indices), np.asarray(indptr)
        fits = 0 in shape or max(shape) <= INT32_MAX
        narrow = fits and all(np.can_cast(a.dtype, np.int32) for a in (columns, pointers))
        dtype = np.int32 if narrow else np.int64
        return cls(
            data=read_only(np.asarray(data, dtype=np.float64)),
            indices=read_only(np.asarray(columns, dtype=dtype)),
            indptr=read_only(np.asarray(pointers, dtype=dtype)),
            shape=(int(shape[0]), int(shape[1])),
        )

    @property
    def nnz(self) -> int:
        """Stored positions (canonical: no explicit zeros, so the count of open positions)."""
        return int(self.indptr[-1]) if self.indptr.size else 0

    def to_scipy(self) -> sp.csr_array:
        """The same matrix as a `scipy.sparse.csr_array` over the same arrays (imports scipy)."""
        import scipy.sparse as sp

        return sp.csr_array((self.data, self.indices, self.indptr), shape=self.shape)

    def toarray(self) -> FloatArray:
        """Dense (accounts x instruments) quantities (zeros where no position)."""
        dense = np.zeros(self.shape)
        rows = np.repeat(np.arange(self.shape[0]), np.diff(self.indptr))
        dense[rows, self.indices] = self.data
        return dense

"""The book: every account's positions and collateral balances, as matrices.

positions: CSR (`core.position_matrix`, the arrays of a scipy.sparse csr_array without importing
scipy), (n_accounts x n_instruments), signed quantity in contracts, canonical (sorted column
indices, no duplicates, no explicit zeros). entry_price is aligned with
positions.data. balances: dense (n_accounts x n_assets), asset units, negative = borrowed.
isolated_collateral, when given, is (nnz x n_assets): the part of each account's balances assigned
to each position for isolated margin.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.account_ids import AccountIds
from crossmargin.core.assets import AssetTable, check_balances
from crossmargin.core.checks import check_finite, check_positive
from crossmargin.core.collateral import haircut_units
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.jit import kernel
from crossmargin.core.position_matrix import PositionMatrix, read_only
from crossmargin.core.position_runs import PositionRuns, RiskBuckets, position_runs, risk_buckets
from crossmargin.core.pricing import entry_term
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


def units_csr(balances: FloatArray, units: FloatArray) -> tuple[IntArray, IntArray, FloatArray]:
    """The non-zero balances as CSR (indptr (A+1,), asset (nb,), their haircut units (nb,)), from
    the dense units (`collateral.haircut_units`)."""
    rows, assets_index = np.nonzero(balances)
    indptr = np.zeros(balances.shape[0] + 1, dtype=np.int64)
    np.cumsum(np.bincount(rows, minlength=balances.shape[0]), out=indptr[1:])
    indptr.flags.writeable = False  # as a grown book's is (`grown_pointers`): one kernel type
    return indptr, assets_index.astype(np.int64), units[rows, assets_index]


# Estimated interpreted cost of one position moved by `_splice_runs` (core.jit's `work`).
SPLICE_US_PER_POSITION = 1


@kernel(nogil=True)
def _splice_runs(
    rows: np.ndarray,
    old_indptr: np.ndarray,
    new_indptr: np.ndarray,
    part_indptr: np.ndarray,
    old: np.ndarray,
    part: np.ndarray,
    out: np.ndarray,
) -> None:
    """out[new_indptr[a]:new_indptr[a+1]] = account a's values: part's row k for a = rows[k]
    (ascending), old's own row otherwise. The kept accounts between two replaced rows are one
    contiguous run in both old and out, so each run is one copy (a memcpy), not a loop over
    accounts or a mask over positions."""
    n_rows = rows.shape[0]
    start = 0  # the current run's first account
    for k in range(n_rows + 1):
        stop = rows[k] if k < n_rows else old_indptr.shape[0] - 1
        source, target = old_indptr[start], new_indptr[start]
        for j in range(old_indptr[stop] - source):
            out[target + j] = old[source + j]
        if k < n_rows:
            source, target = part_indptr[k], new_indptr[stop]
            for j in range(part_indptr[k + 1] - source):
                out[target + j] = part[source + j]
            start = stop + 1


def _rows_replaced(
    old: npt.NDArray[Any], rows: IntArray, new: npt.NDArray[Any], buffered: bool
) -> tuple[npt.NDArray[Any], npt.NDArray[Any] | None]:
    """`old` with its `rows` replaced by `new`, as a read-only view; with `buffered`, the view
    is the leading rows of a new growth buffer with room (`grown_rows`), also returned."""
    if buffered:
        view, buffer = grown_rows(old, 0, None)
        buffer[rows] = new  # the view's rows: nobody has seen them yet
        return view, buffer
    copy = np.array(old)
    copy[rows] = new
    copy.flags.writeable = False
    return copy, None


def _has_repeats(values: IntArray) -> bool:
    """Whether any value occurs twice, by a sort (numpy 2's np.unique hashes: 0.4 s for 1M rows
    where the sort takes ~10 ms, AMD Zen 5)."""
    ordered = np.sort(values)
    return bool(np.any(ordered[1:] == ordered[:-1]))


def compressed_slots(indptr: IntArray, rows: IntArray) -> IntArray:
    """Indices into a compressed (CSR or CSC) matrix's data of the given rows' (or columns')
    entries, row after row: concatenated aranges, vectorised (no loop over rows)."""
    starts = indptr[rows]
    counts = indptr[rows + 1] - starts
    slots: IntArray = np.repeat(starts - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
    return slots


def growth_capacity(needed: int) -> int:
    """Rows a new growth buffer holds: a quarter more than needed (geometric growth, O(1)
    amortised per row) and a thousand more for small books."""
    return needed + needed // 4 + 1024


@dataclass(slots=True)
class PointerBuffer:
    """A CSR indptr's growth buffer, shared along a line of grown books: `end` pointers handed to
    the line's latest book. Only that book grows in place (its new rows' pointers written from
    `end` on, where no earlier book reads); any other book copies (`grown_pointers`)."""

    buffer: IntArray
    end: int


def grown_pointers(pointers: IntArray, n: int, held: PointerBuffer | None) -> tuple[IntArray, PointerBuffer]:
    """`pointers` (R + 1,) with n empty rows after them (n more pointers equal to the last), as a
    read-only view of a buffer with room, and that buffer: the same one when `pointers` are what
    it handed to the line's latest book, else a new one a quarter longer than needed. Growing a
    1M-row book by a few accounts copied its 8 MB indptr (and the balance CSR's) per growth."""
    r = pointers.shape[0]
    reuse = (
        held is not None
        and held.end == r
        and held.buffer.shape[0] >= r + n
        and held.buffer.dtype == pointers.dtype
        and pointers.ctypes.data == held.buffer.ctypes.data
    )
    if not reuse:
        buffer = np.empty(growth_capacity(r + n), dtype=pointers.dtype)
        buffer[:r] = pointers
        held = PointerBuffer(buffer, r)
    assert held is not None
    held.buffer[r : r + n] = pointers[-1]
    held.end = r + n
    view = held.buffer[: r + n]
    view.flags.writeable = False
    return view, held


@dataclass(slots=True)
class BookMemo:
    """What the kernels derive from a book's positions and balances alone, computed on first use
    and kept: no price enters it, so every market state, scenario and model over the book reuses
    it. Mutable on purpose (a memo), held by the immutable Book; a derived book is handed the
    parts that stay valid for it.

    balance_csr: the non-zero balances as CSR (indptr (A+1,), asset (nb,), haircut units (nb,)),
    where value_usd = units x price; holdings through progressive haircuts, borrowings x
    liability weight. position_runs: positions in risk-bucket order (core.position_runs), one per
    set of general underlyings. risk_buckets: the instruments' (underlying, expiry) buckets.
    entry_term: each position's entry term, 1/E (inverse) or E (`pricing.entry_term`).
    haircut_units: (A, K) each balance's haircut-adjusted units (`collateral.haircut_units`).
    row_buffers: for a book grown by `with_new_accounts`, the buffers its balances and haircut
    units are the leading rows of (read-only views), the rows after them zero and never written:
    the next growth takes them without a copy (`grown_rows`). pointer_buffers: the same for the
    positions' and the balance CSR's indptr (`grown_pointers`: only the line's latest book grows
    in place).
    """

    balance_csr: tuple[IntArray, IntArray, FloatArray] | None = None
    position_runs: dict[frozenset[str], PositionRuns] = field(default_factory=dict)
    risk_buckets: RiskBuckets | None = None
    entry_term: FloatArray | None = None
    haircut_units: FloatArray | None = None
    row_buffers: dict[str, FloatArray] = field(default_factory=dict)
    pointer_buffers: dict[str, PointerBuffer] = field(default_factory=dict)


def grown_rows(
    rows: npt.NDArray[Any], n: int, buffer: npt.NDArray[Any] | None, *, writeable: bool = False
) -> tuple[npt.NDArray[Any], npt.NDArray[Any]]:
    """`rows` (R, ...) with `n` zero rows after them, as a view of a buffer, and that buffer:
    the same one while `rows` are its leading rows and it has room (no copy: the rows after any
    view handed out are zeros nobody writes, since every view is read-only), else a new one with
    a quarter more rows than needed (geometric growth: O(1) amortised per row; a venue adding
    accounts at 1M rows copied 96 MB of balances and haircut units per tick). `writeable`: for
    an owner that writes its new rows itself before anyone reads them (the engine's results)."""
    r = rows.shape[0]
    leading = (
        buffer is not None
        and buffer.shape[0] >= r + n
        and buffer.shape[1:] == rows.shape[1:]
        and rows.ctypes.data == buffer.ctypes.data
        and rows.strides == buffer.strides
    )
    if not leading:
        buffer = np.zeros((growth_capacity(r + n), *rows.shape[1:]), dtype=rows.dtype)
        buffer[:r] = rows
    assert buffer is not None
    view = buffer[: r + n]
    view.flags.writeable = writeable
    return view, buffer


@dataclass(frozen=True, slots=True)
class Book:
    """Positions and balances, no prices (those are the MarketState's)."""

    account_ids: Sequence[str]  # an AccountIds once built (`__post_init__`): grows without a copy
    assets: AssetTable
    instruments: InstrumentTable
    positions: PositionMatrix
    entry_price: FloatArray
    balances: FloatArray
    isolated_collateral: FloatArray | None = None
    index: dict[str, int] = field(default_factory=dict, compare=False)
    # init=False: every new book, dataclasses.replace included, starts with an empty memo; the
    # with_* methods below hand over the parts that stay valid.
    memo: BookMemo = field(default_factory=BookMemo, init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "account_ids", AccountIds.of(self.account_ids))
        # Read-only views (no copy): numba types a read-only array apart from a writable one, and
        # books reach the kernels both ways (grown books hand out read-only views of their growth
        # buffers, selected sub-books fresh arrays); one type per argument means one build per
        # kernel, loaded at warm-up, none first used inside a tick.
        object.__setattr__(self, "entry_price", read_only(np.asarray(self.entry_price)))
        object.__setattr__(self, "balances", read_only(np.asarray(self.balances)))

    @property
    def ids(self) -> AccountIds:
        """The account ids, typed as what they are (`account_ids` is declared a Sequence so
        that a book can be built from a tuple or a list)."""
        ids = self.account_ids
        assert isinstance(ids, AccountIds)
        return ids

    @property
    def balance_csr(self) -> tuple[IntArray, IntArray, FloatArray]:
        """The non-zero balances and their haircut units as CSR (`units_csr` of `haircut_units`),
        computed on first use."""
        if self.memo.balance_csr is None:
            self.memo.balance_csr = units_csr(self.balances, self.haircut_units)
        return self.memo.balance_csr

    def with_instrument_schedules(self, instruments: InstrumentTable) -> Book:
        """Same positions on an instrument table that differs only in margin schedules (a venue's
        tier preset): ids, kinds, underlyings, expiries and settlement must be equal, so the
        memo (position runs, risk buckets, haircut units) carries over whole."""
        table = self.instruments
        same = (
            instruments.ids == table.ids
            and instruments.underlyings == table.underlyings
            and np.array_equal(instruments.kind, table.kind)
            and np.array_equal(instruments.underlying_index, table.underlying_index)
            and np.array_equal(instruments.expiry_ns, table.expiry_ns)
            and np.array_equal(instruments.settlement, table.settlement)
        )
        if not same:
            raise InputError("instruments", "a schedule change may not change the instruments themselves")
        book = dataclasses.replace(self, instruments=instruments)
        book.memo.balance_csr = self.memo.balance_csr
        book.memo.position_runs = self.memo.position_runs  # shared: runs built by either serve both
        book.memo.risk_buckets = self.memo.risk_buckets
        book.memo.entry_term = self.memo.entry_term  # settlement is unchanged (checked above)
        book.memo.haircut_units = self.memo.haircut_units  # same balances and assets
        return book

    @property
    def entry_term(self) -> FloatArray:
        """(nnz,) each position's entry term: 1/E for an inverse delta-one instrument, E elsewhere
        (`pricing.entry_term`), computed on first use. Price-free, so the kernels read it rather
        than dividing per position per pass: a division under a branch on the instrument's
        settlement cost the whole-book value pass 36 ms where reading the term costs 14 ms
        (10M positions, AMD Zen 5), the same bits (IEEE division is correctly rounded)."""
        if self.memo.entry_term is None:
            reciprocal = self.instruments.reciprocal_entry[self.positions.indices]
            term = entry_term(self.entry_price, reciprocal)
            term.flags.writeable = False  # shared by every book derived from this one
            self.memo.entry_term = term
        return self.memo.entry_term

    @property
    def haircut_units(self) -> FloatArray:
        """(A, K) `collateral.haircut_units` of the balances (value_usd = units x price),
        computed on first use and kept while the balances are."""
        if self.memo.haircut_units is None:
            units = haircut_units(self.balances, self.assets)
            units.flags.writeable = False  # shared by the books derived from this one
            self.memo.haircut_units = units
        return self.memo.haircut_units

    @property
    def risk_buckets(self) -> RiskBuckets:
        """core.position_runs.risk_buckets of the instrument table, computed on first use."""
        if self.memo.risk_buckets is None:
            self.memo.risk_buckets = risk_buckets(self.instruments)
        return self.memo.risk_buckets

    @property
    def position_runs(self) -> PositionRuns:
        """`position_runs_for()` with no general underlyings."""
        return self.position_runs_for(frozenset())

    def position_runs_for(self, general_underlyings: frozenset[str]) -> PositionRuns:
        """Positions ordered by (underlying, expiry) bucket within each account, with their P&L
        weights, run ends and general section (positions on `general_underlyings` always in it),
        built once per book and set (an immutable book's positions never change)."""
        runs = self.memo.position_runs.get(general_underlyings)
        if runs is None:
            positions = self.positions
            runs = position_runs(
                positions.indptr,
                positions.indices,
                positions.data,
                self.entry_price,
                self.instruments,
                general_underlyings,
            )
            self.memo.position_runs[general_underlyings] = runs
        return runs

    @property
    def n_accounts(self) -> int:
        return len(self.account_ids)

    @property
    def position_account(self) -> IntArray:
        """Account row of every stored position, (nnz,)."""
        rows: IntArray = np.repeat(np.arange(self.n_accounts, dtype=np.int64), np.diff(self.positions.indptr))
        return rows

    def account_row(self, account_id: str) -> int:
        ids = self.account_ids
        if not self.index and ids:  # the id -> row index is built on first use
            self.index.update(zip(ids, range(len(ids)), strict=True))
        if self._holds(account_id):
            return self.index[account_id]
        # The index is shared along a line of grown books (`with_new_accounts`): an entry may be
        # a later book's. A scan answers then (O(accounts): only for an id this book lacks).
        try:
            return ids.index(account_id)
        except ValueError:
            raise InputError("account", f"unknown account {account_id!r}") from None

    def _holds(self, account_id: str) -> bool:
        """The id index names this book's own row for `account_id` (an entry may be a later
        grown book's: the index is shared along them)."""
        row = self.index.get(account_id)
        return row is not None and row < len(self.account_ids) and self.account_ids[row] == account_id

    def with_balances(self, balances: FloatArray) -> Book:
        """Same positions, other balances (e.g. after interest accrues or collateral moves): the
        position runs and risk buckets carry over, the haircut units are rebuilt on use."""
        matrix = np.asarray(balances, dtype=np.float64)
        check_balances(matrix, self.assets)
        if matrix.shape[0] != self.n_accounts:
            raise InputError("balances", f"{matrix.shape[0]} rows for {self.n_accounts} accounts")
        book = dataclasses.replace(self, balances=matrix)
        book.memo.position_runs = self.memo.position_runs
        book.memo.risk_buckets = self.memo.risk_buckets
        book.memo.entry_term = self.memo.entry_term
        return book

    def with_new_accounts(self, account_ids: Sequence[str]) -> Book:
        """The book with accounts that hold nothing yet (no position, no balance) after the
        others: the CSR gains empty rows (no position is copied), the balances zero rows. The
        memos of the positions (entry terms, risk buckets) carry over, those of the balances are
        extended with zeros; position runs are rebuilt on use. O(accounts) for the balances and
        the id index, not a rebuild of the book (a venue opens accounts between ticks)."""
        new = tuple(account_ids)
        if self.isolated_collateral is not None:
            raise InputError(
                "isolated_collateral", "accounts cannot be added to a book with isolated collateral"
            )
        if not self.index and self.account_ids:
            self.account_row(self.account_ids[0])  # builds the id -> row index once
        taken = [a for a in new if self._holds(a)]
        if taken or len(set(new)) != len(new):
            raise InputError("accounts.id", f"account {(taken or list(new))[0]!r} is already in the book")
        n, old, memo = len(new), self.positions, self.memo
        indptr, indptr_buffer = grown_pointers(old.indptr, n, memo.pointer_buffers.get("positions"))
        positions = PositionMatrix.of(old.data, old.indices, indptr, (old.shape[0] + n, old.shape[1]))
        balances, balance_buffer = grown_rows(self.balances, n, memo.row_buffers.get("balances"))
        # The id index grows in place (a copy was O(accounts) per growth); `account_row` checks
        # an entry against the book's own ids, so the books before this one stay right.
        self.index.update((a, len(self.account_ids) + k) for k, a in enumerate(new))
        book = Book(
            account_ids=self.ids.grown(new),
            assets=self.assets,
            instruments=self.instruments,
            positions=positions,
            entry_price=self.entry_price,
            balances=balances,
            index=self.index,
        )
        book.memo.entry_term = memo.entry_term
        book.memo.risk_buckets = memo.risk_buckets
        book.memo.row_buffers["balances"] = balance_buffer
        book.memo.pointer_buffers["positions"] = indptr_buffer
        if memo.haircut_units is not None:
            units, units_buffer = grown_rows(memo.haircut_units, n, memo.row_buffers.get("haircut_units"))
            book.memo.haircut_units = units
            book.memo.row_buffers["haircut_units"] = units_buffer
        if memo.balance_csr is not None:
            rows, asset, units_nz = memo.balance_csr
            rows, book.memo.pointer_buffers["balance_csr"] = grown_pointers(
                rows, n, memo.pointer_buffers.get("balance_csr")
            )
            book.memo.balance_csr = (rows, asset, units_nz)
        return book

    def select(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> Book:
        """A book of only these accounts (in this order), same instruments and assets.

        Sliced straight from the canonical CSR (each account's positions stay sorted), so it costs
        a gather of the selected positions, not a rebuild: the long-lived engine re-margins the
        holders of a moved price as such a sub-book at every tick."""
        picked = np.asarray(rows, dtype=np.int64)
        if picked.size and (picked.min() < 0 or picked.max() >= self.n_accounts):
            raise InputError("account", f"account row out of range 0..{self.n_accounts - 1}")
        counts = np.diff(self.positions.indptr)[picked]
        stored = self.stored_positions(picked)
        indptr = np.zeros(picked.size + 1, dtype=np.int64)
        np.cumsum(counts, out=indptr[1:])
        positions = PositionMatrix.of(
            self.positions.data[stored],
            self.positions.indices[stored],
            indptr,
            (picked.size, self.instruments.n_instruments),
        )
        ascending = picked.size < 2 or bool(np.all(np.diff(picked) > 0))
        if not ascending and _has_repeats(picked):
            raise InputError("account", "an account row is selected twice")
        # Gathered in C; the id -> row index is built only if someone asks (account_row).
        selected = self.ids.gather(picked.tolist())
        iso = self.isolated_collateral
        return Book(
            account_ids=selected,
            assets=self.assets,
            instruments=self.instruments,
            positions=positions,
            entry_price=self.entry_price[stored],
            balances=self.balances[picked],
            isolated_collateral=None if iso is None else iso[stored],
        )

    def with_rows_replaced(self, rows: npt.NDArray[np.int64], part: Book) -> Book:
        """This book with the accounts at `rows` (ascending, distinct) replaced by `part`'s, in
        order: the same ids, instruments and assets, new positions and balances (a venue's
        account events, folded by the engine). A splice of the CSR (`_splice_runs`: the kept
        accounts' positions copied run by run between replaced rows): O(positions) copies and no
        sort, where a select of the others, a stack and a reordering select cost 1.6-2.4 s at 1M
        accounts (np.unique's hash of the order, twice), masks over the positions 55-90 ms, the
        runs 42 ms (1,024 accounts, 10M positions, AMD Zen 5). The memo's entry terms and
        haircut units carry over for the accounts kept and come from `part` for the others (each
        a function of its own account's rows alone)."""
        rows = np.asarray(rows, dtype=np.int64)
        if part.n_accounts != rows.size or (rows.size > 1 and not bool(np.all(np.diff(rows) > 0))):
            raise InputError("rows", "must be ascending, distinct, one per account of the part")
        if rows.size and (rows[0] < 0 or rows[-1] >= self.n_accounts):
            raise InputError("rows", f"account row out of range 0..{self.n_accounts - 1}")
        if part.instruments is not self.instruments or part.assets is not self.assets:
            raise InputError("part", "must be over this book's instrument and asset tables")
        if self.isolated_collateral is not None or part.isolated_collateral is not None:
            raise InputError("isolated_collateral", "a book with isolated collateral cannot be spliced")
        if list(self.ids.gather(rows.tolist())) != list(part.account_ids):
            raise InputError("part.account_ids", "must be the ids of the replaced rows, in order")
        counts = np.diff(self.positions.indptr)
        counts[rows] = np.diff(part.positions.indptr)
        # A book in growth buffers (a venue's, reserved at warm-up) is spliced into new buffers
        # with room, so that the next sign-up grows in place (`grown_rows`, `grown_pointers`)
        # instead of copying ~100 MB at 1M accounts.
        buffered = "balances" in self.memo.row_buffers
        # The book's own index dtype (a change would be new kernel types), int64 if it overflows.
        total = int(counts.sum())
        dtype = self.positions.indptr.dtype
        dtype = dtype if total <= np.iinfo(dtype).max else np.dtype(np.int64)
        room = growth_capacity(self.n_accounts + 1) if buffered else self.n_accounts + 1
        pointers = np.empty(room, dtype=dtype)
        pointers[0] = 0
        np.cumsum(counts, out=pointers[1 : self.n_accounts + 1])
        indptr = pointers[: self.n_accounts + 1]
        old_indptr = self.positions.indptr.astype(np.int64, copy=False)
        new_indptr = indptr.astype(np.int64, copy=False)
        part_indptr = part.positions.indptr.astype(np.int64, copy=False)
        splice = _splice_runs.for_work(SPLICE_US_PER_POSITION * total)

        def spliced(old: npt.NDArray[Any], new: npt.NDArray[Any]) -> npt.NDArray[Any]:
            out = np.empty(total, dtype=old.dtype)
            splice(rows, old_indptr, new_indptr, part_indptr, old, new.astype(old.dtype, copy=False), out)
            return out

        balances, balance_buffer = _rows_replaced(self.balances, rows, part.balances, buffered)
        book = Book(
            account_ids=self.account_ids,
            assets=self.assets,
            instruments=self.instruments,
            positions=PositionMatrix.of(
                spliced(self.positions.data, part.positions.data),
                spliced(self.positions.indices, part.positions.indices),
                indptr,
                self.positions.shape,
            ),
            entry_price=spliced(self.entry_price, part.entry_price),
            balances=balances,
            index=self.index,
        )
        book.memo.risk_buckets = self.memo.risk_buckets  # the instruments' (unchanged)
        if self.memo.entry_term is not None:
            term = spliced(self.memo.entry_term, part.entry_term)
            term.flags.writeable = False
            book.memo.entry_term = term
        if self.memo.haircut_units is not None:
            units, units_buffer = _rows_replaced(self.memo.haircut_units, rows, part.haircut_units, buffered)
            book.memo.haircut_units = units
            if units_buffer is not None:
                book.memo.row_buffers["haircut_units"] = units_buffer
        if balance_buffer is not None:
            book.memo.row_buffers["balances"] = balance_buffer
            book.memo.pointer_buffers["positions"] = PointerBuffer(pointers, self.n_accounts + 1)
        return book

    def stored_positions(self, rows: Sequence[int] | npt.NDArray[np.int64]) -> IntArray:
        """Indices into positions.data of these accounts' positions, account by account."""
        return compressed_slots(self.positions.indptr, np.asarray(rows, dtype=np.int64))

    def scaled(self, factor: float) -> Book:
        """Every position multiplied by `factor` (> 0); balances unchanged."""
        check_positive(factor, "factor")
        positions = PositionMatrix.of(
            self.positions.data * factor, self.positions.indices, self.positions.indptr, self.positions.shape
        )
        return dataclasses.replace(self, positions=positions)

    @classmethod
    def from_arrays(
        cls,
        *,
        account_ids: Sequence[str],
        assets: AssetTable,
        instruments: InstrumentTable,
        account_index: npt.ArrayLike,
        instrument_index: npt.ArrayLike,
        quantity: npt.ArrayLike,
        entry_price: npt.ArrayLike,
        balances: npt.ArrayLike,
        isolated_collateral: npt.ArrayLike | None = None,
    ) -> Book:
        """Build a canonical book from coordinate arrays (one row per position). Vectorised."""
        ids = tuple(account_ids)
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(x for x in ids if x in seen or seen.add(x))  # type: ignore[func-returns-value]
            raise InputError("accounts.id", f"duplicate account {dup!r}")
        rows = np.asarray(account_index, dtype=np.int64)
        cols = np.asarray(instrument_index, dtype=np.int64)
        qty = np.asarray(quantity, dtype=np.float64)
        entry = np.asarray(entry_price, dtype=np.float64)
        bal = np.asarray(balances, dtype=np.float64).reshape(len(ids), assets.n_assets)
        if not (rows.shape == cols.shape == qty.shape == entry.shape) or rows.ndim != 1:
            raise InputError("positions", "account, instrument, quantity and entry_price must align")
        if rows.size and (rows.min() < 0 or rows.max() >= len(ids)):
            raise InputError("positions.account", "account index out of range")
        if cols.size and (cols.min() < 0 or cols.max() >= instruments.n_instruments):
            raise InputError("positions.instrument", "instrument index out of range")
        check_finite(qty, "positions.quantity")
        check_finite(entry, "positions.entry_price")
        # Options may be entered at a zero premium; delta-one entry prices divide (inverse PnL).
        delta_one = ~instruments.is_option[cols] if cols.size else np.zeros(0, dtype=bool)
        bad_entry = (entry < 0.0) | (delta_one & (entry <= 0.0))
        if np.any(bad_entry):
            j = int(np.flatnonzero(bad_entry)[0])
            raise InputError(
                f"positions[{instruments.ids[cols[j]]}].entry_price",
                f"must be > 0, got {entry[j]!r}",
            )
        check_balances(bal, assets)
        # Canonical order: by account, then instrument. One int64 key (rows < 2**31 accounts, cols
        # < 2**31 instruments); a table already in that order (a sorted file, a select) is not
        # sorted again. A stable sort of the key gives lexsort's order, ~3x faster at 10 M rows.
        key = rows * instruments.n_instruments + cols
        order = None
        if key.size > 1 and np.any(key[1:] < key[:-1]):
            order = np.argsort(key, kind="stable")
            rows, cols, qty, entry, key = rows[order], cols[order], qty[order], entry[order], key[order]
        same = key[1:] == key[:-1]
        if np.any(same):
            j = int(np.flatnonzero(same)[0])
            raise InputError(
                "positions",
                f"duplicate position in {instruments.ids[cols[j]]!r} for account {ids[rows[j]]!r}",
            )
        iso = None
        if isolated_collateral is not None:
            iso = np.asarray(isolated_collateral, dtype=np.float64).reshape(qty.size, assets.n_assets)
            iso = iso if order is None else iso[order]
        keep = qty != 0.0
        if not np.all(keep):  # zero positions are rare: no four gathers of nnz when there are none
            rows, cols, qty, entry = rows[keep], cols[keep], qty[keep], entry[keep]
            if iso is not None:
                iso = iso[keep]
        elif order is None:  # nothing gathered: the book owns its arrays (the caller's may change)
            qty, entry = qty.copy(), entry.copy()
        if iso is not None:
            check_finite(iso, "positions.isolated_collateral")
            if np.any(iso < 0.0):
                raise InputError("positions.isolated_collateral", "must be >= 0")
            assigned = np.zeros_like(bal)
            np.add.at(assigned, rows, iso)
            over = assigned > np.maximum(bal, 0.0) * (1.0 + 1e-12)
            if np.any(over):
                a, k = np.argwhere(over)[0]
                raise InputError(
                    "positions.isolated_collateral",
                    f"account {ids[a]!r} assigns {assigned[a, k]:g} {assets.symbols[k]} to positions "
                    f"but holds {bal[a, k]:g}",
                )
        indptr = np.zeros(len(ids) + 1, dtype=np.int64)
        np.cumsum(np.bincount(rows, minlength=len(ids)), out=indptr[1:])
        positions = PositionMatrix.of(qty, cols, indptr, (len(ids), instruments.n_instruments))
        return cls(
            account_ids=ids,
            assets=assets,
            instruments=instruments,
            positions=positions,
            entry_price=entry,
            balances=bal,
            isolated_collateral=iso,
            index={},  # built on first account_row: 1 M ids cost ~0.5 s a run may not need
        )

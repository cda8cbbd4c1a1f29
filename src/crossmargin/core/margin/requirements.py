"""Per-position value and requirements: the numpy reference and the fused whole-book kernel.

Both compute, for a position of q contracts in instrument i with entry price E:
    value_usd = q · (unit_value_i + coefficient_i · entry_term(E))
    IM = tiered_IM(|q|·notional_i, |q|·size_i) + |q| · (option_im_short_i if q < 0 else option_im_long_i)
    MM = the same with maintenance rates
The numpy path (`position_requirements`) serves breakdowns and isolated margin; the numba kernel
(`book_totals`) reduces the whole book to per-account totals in one pass over the CSR arrays and
the balance matrix, so nothing of size nnz is materialised: 10 M positions cost one read of
~20 bytes each. Tests assert the two agree.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.instruments import InstrumentTable, tier_index, tiered_margin_usd
from crossmargin.core.jit import kernel, prange
from crossmargin.core.margin.options_rule import (
    OptionMarginParams,
    OptionUnitMargin,
    option_unit_margin,
)
from crossmargin.core.margin.result import EQUITY_ZERO_TOLERANCE, MarginResult
from crossmargin.core.margin.result_kernels import account_invariants_hold, pooled_account
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, entry_term
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
# Interpreted cost of the kernels (core.jit), CPU microseconds per position or balance (measured,
# bench/bench_startup.py --calibrate)
INTERPRETED_US_PER_POSITION = 3  # measured 2.6 us (CPU, Intel Xeon)
INTERPRETED_US_PER_ITEM = 3  # measured 3.1 us


@dataclass(frozen=True, slots=True)
class PositionRequirements:
    """Per stored position (aligned with book.positions.data or a row subset), USD."""

    value_usd: FloatArray
    unrealised_pnl_usd: FloatArray
    initial_margin_usd: FloatArray
    maintenance_margin_usd: FloatArray


def position_requirements(
    book: Book,
    valuation: InstrumentValuation,
    option_margin: OptionUnitMargin,
    *,
    instrument_index: IntArray,
    quantity: FloatArray,
    entry_price: FloatArray,
) -> PositionRequirements:
    """Numpy reference for a set of positions (all of them, or a few accounts' rows)."""
    table = book.instruments
    i = instrument_index
    inverse = table.is_inverse[i]
    term = entry_term(entry_price, table.reciprocal_entry[i])
    value = quantity * (valuation.unit_value_usd[i] + valuation.entry_coefficient_usd[i] * term)
    # Unrealised PnL against entry: futures' value is already PnL; spot and options compare the
    # mark (settlement units) with the entry price, converted to USD at the index for inverse.
    price_settlement = np.where(
        table.is_option[i], valuation.option_premium_settlement[i], valuation.mark_price[i]
    )
    to_usd = np.where(inverse, valuation.spot_usd[i], 1.0)
    upl_plain = quantity * table.contract_size[i] * (price_settlement - entry_price) * to_usd
    delta1 = ~table.is_option[i] & (table.kind[i] != 0)
    unrealised = np.where(delta1, value, upl_plain)
    size = np.abs(quantity)
    notional = size * valuation.notional_usd[i]
    units = size * valuation.size_units[i]
    short = quantity < 0.0
    im_option = size * np.where(short, option_margin.initial_short_usd[i], option_margin.initial_long_usd[i])
    mm_option = size * np.where(
        short, option_margin.maintenance_short_usd[i], option_margin.maintenance_long_usd[i]
    )
    tier = tier_index(notional_usd=notional, instrument_index=i, table=table)  # IM and MM share it
    im = (
        tiered_margin_usd(
            notional_usd=notional,
            size_units=units,
            instrument_index=i,
            table=table,
            maintenance=False,
            tier=tier,
        )
        + im_option
    )
    mm = (
        tiered_margin_usd(
            notional_usd=notional,
            size_units=units,
            instrument_index=i,
            table=table,
            maintenance=True,
            tier=tier,
        )
        + mm_option
    )
    return PositionRequirements(
        value_usd=value,
        unrealised_pnl_usd=unrealised,
        initial_margin_usd=im,
        maintenance_margin_usd=mm,
    )


def fused_position_requirements(
    book: Book,
    valuation: InstrumentValuation,
    option_margin: OptionUnitMargin,
    *,
    instrument_index: IntArray,
    quantity: FloatArray,
    entry_price: FloatArray,
) -> PositionRequirements:
    """`position_requirements` in one numba pass, parallel over positions: the same operations in
    the same order per position, so the same bits (tests/core/margin hold them equal), without the
    ~20 temporaries of size n the numpy path allocates (10 M positions: ~0.2 s against ~3 s).
    Breakdowns of whole books take this path; the numpy one stays the readable reference."""
    table = book.instruments
    return requirements_from_records(
        table,
        valuation,
        instrument_records(table, valuation, option_margin),
        instrument_index=instrument_index,
        quantity=quantity,
        entry_price=entry_price,
    )


def requirements_from_records(
    table: InstrumentTable,
    valuation: InstrumentValuation,
    records: FloatArray,
    *,
    instrument_index: IntArray,
    quantity: FloatArray,
    entry_price: FloatArray,
) -> PositionRequirements:
    """`fused_position_requirements` from the instrument records of `table` in `valuation`
    already built (`instrument_records`): a caller that keeps them across calls (the ledger's
    priced market) pays O(its positions), not O(instruments), per call."""
    n = quantity.shape[0]
    out = np.empty((4, n))
    _position_kernel.for_work(INTERPRETED_US_PER_POSITION * n)(
        np.ascontiguousarray(instrument_index, dtype=np.int64),
        np.ascontiguousarray(quantity, dtype=np.float64),
        np.ascontiguousarray(entry_price, dtype=np.float64),
        table.is_option,
        table.is_inverse,
        table.kind != 0,
        table.contract_size,
        valuation.option_premium_settlement,
        valuation.mark_price,
        valuation.spot_usd,
        records,
        table.tier_floor_usd.shape[1],
        out,
    )
    return PositionRequirements(
        value_usd=out[0], unrealised_pnl_usd=out[1], initial_margin_usd=out[2], maintenance_margin_usd=out[3]
    )


# The per-instrument inputs of the two kernels, one row per instrument (`instrument_records`):
# a position reads its instrument's first two cache lines (the scalars, tier 0 and the floor of
# tier 1) instead of one line in each of fifteen arrays, five of them (I, T) tier tables.
# Columns are unsigned (np.uint64) so that the kernels index with unsigned integers only: numba
# wraps a signed index that might be negative (a compare and a select per read, ~15 reads per
# position), an unsigned one it uses as it is: ~10% of the whole-book kernel's time.
# An unsigned index plus a plain int literal is signed again in numba: add these constants.
RECIPROCAL, UNIT_VALUE, COEFFICIENT = np.uint64(0), np.uint64(1), np.uint64(2)
NOTIONAL, SIZE_UNITS, RATE_PER_UNIT = np.uint64(3), np.uint64(4), np.uint64(5)
IM_SHORT, MM_SHORT, IM_LONG, MM_LONG = np.uint64(6), np.uint64(7), np.uint64(8), np.uint64(9)
TIER0 = np.uint64(10)  # tier t: [floor, IM rate, MM rate, IM deduction, MM deduction] at TIER0 + TIER_WIDTH·t
TIER_WIDTH = np.uint64(5)
TIER_FLOOR, TIER_IM_RATE, TIER_MM_RATE = np.uint64(0), np.uint64(1), np.uint64(2)
TIER_IM_DEDUCTION, TIER_MM_DEDUCTION = np.uint64(3), np.uint64(4)
TIER1 = TIER0 + TIER_WIDTH
RECORD_ALIGN = 8  # float64s per 64-byte cache line


def instrument_records(
    table: InstrumentTable, valuation: InstrumentValuation, option_margin: OptionUnitMargin
) -> FloatArray:
    """(I, W) float64, row i = instrument i's kernel inputs in the layout above: T tiers, then the
    floor of a tier T that no notional reaches (NaN: every comparison with it is false, even
    +inf's), then zeros up to W, a whole number of cache lines; row 0 on a line boundary. The
    sentinel lets the kernels test the next tier's floor without testing T first (`tier_from_2`).
    Built per valuation (I·W·8 bytes: ~1 MB for 2,000 instruments of 10 tiers, well under a
    millisecond).

    Rows of more than two lines span an odd number of them: nearly every position reads only its
    row's first two lines, and with an even stride (8 lines at 10 tiers) those lines of every row
    fall in a quarter of the cache's sets (a set is chosen by address bits the stride leaves
    fixed), so the hot lines of 2,000 instruments crowd a quarter of L1 and L2. An odd stride
    spreads them over every set: bench_cross --large's kernel 32.7-33.0 -> 29.8-31.0 ms best,
    medians 35 -> 31 ms (AMD EPYC family 25 model 17, 1 MB L2; the same bits: only the layout
    changes)."""
    n, n_tiers = table.tier_floor_usd.shape
    used = int(TIER0) + int(TIER_WIDTH) * n_tiers
    lines = -(-(used + 1) // RECORD_ALIGN)
    width = (lines + (lines > 2 and lines % 2 == 0)) * RECORD_ALIGN
    raw = np.empty(n * width + RECORD_ALIGN)
    skip = (-raw.ctypes.data % 64) // 8  # float64s to the first 64-byte boundary
    records: FloatArray = raw[skip : skip + n * width].reshape(n, width)
    columns = (
        (RECIPROCAL, table.reciprocal_entry.astype(np.float64)),
        (UNIT_VALUE, valuation.unit_value_usd),
        (COEFFICIENT, valuation.entry_coefficient_usd),
        (NOTIONAL, valuation.notional_usd),
        (SIZE_UNITS, valuation.size_units),
        (RATE_PER_UNIT, table.rate_per_unit),
        (IM_SHORT, option_margin.initial_short_usd),
        (MM_SHORT, option_margin.maintenance_short_usd),
        (IM_LONG, option_margin.initial_long_usd),
        (MM_LONG, option_margin.maintenance_long_usd),
    )
    for column, values in columns:
        records[:, column] = values
    tiers = records[:, int(TIER0) : used].reshape(n, n_tiers, int(TIER_WIDTH))
    tiers[:, :, TIER_FLOOR] = table.tier_floor_usd
    tiers[:, :, TIER_IM_RATE] = table.tier_initial_rate
    tiers[:, :, TIER_MM_RATE] = table.tier_maintenance_rate
    tiers[:, :, TIER_IM_DEDUCTION] = table.tier_initial_deduction_usd
    tiers[:, :, TIER_MM_DEDUCTION] = table.tier_maintenance_deduction_usd
    records[:, used] = np.nan  # tier T's floor: the search stops there
    records[:, used + 1 :] = 0.0
    return records


def priced_records(
    table: InstrumentTable, valuation: InstrumentValuation, option_params: OptionMarginParams
) -> FloatArray:
    """`instrument_records(table, valuation, option_unit_margin(table, valuation, option_params))`,
    built once per valuation, table and option parameters and kept in the valuation's memo: a
    venue re-margining one account after each liquidation at unchanged prices paid O(instruments)
    for them every time (~160 us at 2,000 instruments; most of a one-account pass at 15). The
    kernels only read them."""
    key = ("instrument_records", id(table), option_params)
    kept = valuation.memo.get(key)
    if kept is not None and kept[0] is table:  # the id of a table since freed may be reused
        records: FloatArray = kept[1]
        return records
    records = instrument_records(table, valuation, option_unit_margin(table, valuation, option_params))
    valuation.memo[key] = (table, records)
    return records


@kernel(nogil=True)
def tier_from_2(records: np.ndarray, i: np.uint64, notional: float, n_tiers: int) -> np.uint64:
    """Column of the first field of the tier `notional` (USD) reaches in instrument i's record,
    for a notional that reaches tier 2's floor: the last tier whose floor it reaches. Floors are
    strictly increasing (MarginSchedule checks it) and padded with +inf, so the search stops at
    the first floor above it: the same tier as counting the floors reached
    (`instruments.tier_index`).

    The kernels take tiers 0 and 1 themselves, without a branch, and call this only past them:
        t = TIER0 + TIER_WIDTH · (notional >= floor of tier 1)   (NaN sentinel when T = 1)
        if notional >= floor of tier t + 1: t = tier_from_2(...)
    On the bench book 91% of positions stay in tier 0, 7% stop in tier 1 and 2.5% go on: a
    branch on tier 1 was mispredicted often, one on tier 2 rarely. Written out in the kernels,
    not in a helper: a helper taking `records` on every position costs the kernels' serial builds
    a reference count on it per call (two atomic operations), and numba does not prune it."""
    base = TIER1 + TIER_WIDTH
    for _ in range(3, n_tiers):
        if notional < records[i, base + TIER_WIDTH + TIER_FLOOR]:
            break
        base += TIER_WIDTH
    return base


@kernel(parallel=True, nogil=True)
def _position_kernel(
    instrument_index: np.ndarray,
    quantity: np.ndarray,
    entry_price: np.ndarray,
    is_option: np.ndarray,
    is_inverse: np.ndarray,
    not_spot: np.ndarray,
    contract_size: np.ndarray,
    premium_settlement: np.ndarray,
    mark_price: np.ndarray,
    spot_usd: np.ndarray,
    records: np.ndarray,
    n_tiers: int,
    out: np.ndarray,
) -> None:
    # Each line mirrors position_requirements (same operands, same order: the same rounding).
    for p in prange(quantity.shape[0]):
        i = np.uint64(instrument_index[p])  # unsigned: no wraparound (the column constants)
        q = quantity[p]
        e = entry_price[p]
        term = 1.0 / e if records[i, RECIPROCAL] != 0.0 else e
        value = q * (records[i, UNIT_VALUE] + records[i, COEFFICIENT] * term)
        price_settlement = premium_settlement[i] if is_option[i] else mark_price[i]
        to_usd = spot_usd[i] if is_inverse[i] else 1.0
        if not is_option[i] and not_spot[i]:
            unrealised = value
        else:
            unrealised = q * contract_size[i] * (price_settlement - e) * to_usd
        size = abs(q)
        notional = size * records[i, NOTIONAL]
        units = size * records[i, SIZE_UNITS]
        t = TIER0 + TIER_WIDTH * np.uint64(notional >= records[i, TIER1 + TIER_FLOOR])
        if notional >= records[i, t + TIER_WIDTH + TIER_FLOOR]:  # tiers 2+: rare (`tier_from_2`)
            t = tier_from_2(records, i, notional, n_tiers)
        growth = records[i, RATE_PER_UNIT] * units
        if q < 0.0:
            im_option = size * records[i, IM_SHORT]
            mm_option = size * records[i, MM_SHORT]
        else:
            im_option = size * records[i, IM_LONG]
            mm_option = size * records[i, MM_LONG]
        out[0, p] = value
        out[1, p] = unrealised
        im_tier = notional * (records[i, t + TIER_IM_RATE] + growth) - records[i, t + TIER_IM_DEDUCTION]
        mm_tier = notional * (records[i, t + TIER_MM_RATE] + growth) - records[i, t + TIER_MM_DEDUCTION]
        out[2, p] = im_tier + im_option
        out[3, p] = mm_tier + mm_option


@dataclass(frozen=True, slots=True)
class BookTotals:
    """Per account, (n_accounts,), USD. gross_value_usd = Σ |each balance's value| + Σ over
    positions of |q·unit_value| + |q·coefficient·entry_term|: the scale of the rounding error in
    equity (`result.EQUITY_ZERO_TOLERANCE`)."""

    collateral_value_usd: FloatArray
    position_value_usd: FloatArray
    initial_margin_usd: FloatArray
    maintenance_margin_usd: FloatArray
    gross_value_usd: FloatArray


@dataclass(frozen=True, slots=True)
class _ChosenRows:
    """The accounts a fused pass runs over: all (subset False) or `account_rows` (sorted), n of
    them, and the pass's estimated interpreted work in microseconds (core.jit)."""

    subset: bool
    account_rows: IntArray
    n: int
    work: int


def _chosen_rows(book: Book, rows: IntArray | None) -> _ChosenRows:
    return _chosen_rows_of(book.positions.indptr, book.assets.n_assets, rows)


def _chosen_rows_of(
    indptr: npt.NDArray[np.integer[Any]], n_assets: int, rows: IntArray | None
) -> _ChosenRows:
    if rows is None:
        n, positions, account_rows = indptr.shape[0] - 1, int(indptr[-1]), np.zeros(0, np.int64)
    else:
        account_rows = np.ascontiguousarray(rows, dtype=np.int64)
        n, positions = account_rows.size, int((indptr[account_rows + 1] - indptr[account_rows]).sum())
    work = INTERPRETED_US_PER_ITEM * (positions + n * n_assets)
    return _ChosenRows(subset=rows is not None, account_rows=account_rows, n=n, work=work)


def book_totals(
    book: Book,
    valuation: InstrumentValuation,
    option_params: OptionMarginParams,
    asset_price_usd: FloatArray,
    rows: IntArray | None = None,
) -> BookTotals:
    """Per-account totals in one fused pass (numba, parallel over accounts); asset_price_usd (K,)
    USD per unit of each collateral asset. `rows` (sorted account rows): those accounts only, in
    that order, read where they lie in the book (no sub-book is gathered: a tick re-margins the
    holders of what moved at the cost of their positions alone); the same bits as their rows of
    the whole-book pass."""
    out, _, _ = _book_pass(
        _chosen_rows(book, rows),
        _book_arguments(book, valuation, option_params, asset_price_usd),
        derive=False,
    )
    return _totals(out)


class _BookArrays(NamedTuple):
    """`_book_kernel`'s inputs besides the rows and the outputs (`csr_totals` says what each is)."""

    indptr: IntArray
    indices: npt.NDArray[np.integer[Any]]
    quantity: FloatArray
    entry_term: FloatArray
    records: FloatArray
    n_tiers: int
    haircut_units: FloatArray
    asset_price_usd: FloatArray


def _book_arguments(
    book: Book, valuation: InstrumentValuation, option_params: OptionMarginParams, asset_price_usd: FloatArray
) -> _BookArrays:
    """`_book_kernel`'s inputs from a book."""
    return _BookArrays(
        book.positions.indptr.astype(np.int64, copy=False),
        book.positions.indices,
        book.positions.data,
        book.entry_term,
        priced_records(book.instruments, valuation, option_params),
        book.instruments.tier_floor_usd.shape[1],
        book.haircut_units,
        asset_price_usd,
    )


def _totals(out: tuple[FloatArray, ...]) -> BookTotals:
    return BookTotals(
        collateral_value_usd=out[0],
        position_value_usd=out[1],
        initial_margin_usd=out[2],
        maintenance_margin_usd=out[3],
        gross_value_usd=out[4],
    )


def csr_totals(
    *,
    indptr: IntArray,
    indices: npt.NDArray[np.integer[Any]],
    quantity: FloatArray,
    entry_term: FloatArray,
    records: FloatArray,
    n_tiers: int,
    haircut_units: FloatArray,
    asset_price_usd: FloatArray,
    rows: IntArray | None = None,
    serial: bool = False,
) -> BookTotals:
    """`book_totals` from its parts: positions in CSR order (account a's in indptr[a]:indptr[a+1]),
    their entry terms (`Book.entry_term`), the instrument records of a valuation
    (`instrument_records`), the balances' haircut units (`collateral.haircut_units`). For a
    caller that holds these without a `Book`: the same kernel, so the same bits as a Book of the
    same accounts (the ledger's few accounts take `margin.few_accounts`, which calls this kernel's
    serial build in one dispatch with the rest). `serial`: its build without threads
    (`Kernel.serial`), for a handful of accounts."""
    chosen = _chosen_rows_of(indptr, haircut_units.shape[1], rows)
    arrays = _BookArrays(
        indptr, indices, quantity, entry_term, records, n_tiers, haircut_units, asset_price_usd
    )
    out, _, _ = _book_pass(chosen, arrays, serial=serial, derive=False)
    return _totals(out)


def book_result(
    book: Book,
    valuation: InstrumentValuation,
    option_params: OptionMarginParams,
    asset_price_usd: FloatArray,
    rows: IntArray | None = None,
    *,
    model: str,
) -> MarginResult:
    """`MarginResult.pooled` of `book_totals(...)` (gross value given: the rounding-scaled
    bankruptcy rule), the same bits, in the same pass: equity, available, ratio and bankrupt
    derived per account on the totals still in registers, and the result's invariants checked
    there too. Two serial passes over 1M-account arrays fewer (pooled_into, invariants_hold:
    ~10 ms of a 48 ms whole-book tick on an AMD Zen 3). When an account fails a check, the
    result is built through `MarginResult`'s own checks, which name the field and the index."""
    arguments = _book_arguments(book, valuation, option_params, asset_price_usd)
    out, derived, failing = _book_pass(_chosen_rows(book, rows), arguments, derive=True)
    arrays = {
        "equity_usd": derived[0],
        "collateral_value_usd": out[0],
        "position_value_usd": out[1],
        "initial_margin_usd": out[2],
        "maintenance_margin_usd": out[3],
        "available_usd": derived[1],
        "margin_ratio": derived[2],
        "bankrupt": derived[3],
    }
    return MarginResult.of_kernel_check(model, failing, **arrays)


def _book_pass(
    chosen: _ChosenRows, arrays: _BookArrays, *, derive: bool, serial: bool = False
) -> tuple[tuple[FloatArray, ...], tuple[npt.NDArray[Any], ...], int]:
    """`_book_kernel` over the chosen rows: its five totals, the four derived arrays (of no rows
    without derive), and the count of accounts failing the result's invariants (0 without
    derive)."""
    book_kernel = _book_kernel.serial() if serial else _book_kernel
    # Arrays of their own (not rows of one (5, n) block): the engine keeps and updates a
    # result's arrays in place, and a row view would make it copy all of them (40 MB at 1M).
    out = tuple(np.empty(chosen.n) for _ in range(5))
    n_derived = chosen.n if derive else 0
    derived = (
        np.empty(n_derived),
        np.empty(n_derived),
        np.empty(n_derived),
        np.empty(n_derived, dtype=np.bool_),
    )
    failing = book_kernel.for_work(chosen.work)(
        chosen.subset,
        chosen.account_rows,
        arrays.indptr,
        arrays.indices,
        arrays.quantity,
        arrays.entry_term,
        arrays.records,
        arrays.n_tiers,
        arrays.haircut_units,
        np.ascontiguousarray(arrays.asset_price_usd, dtype=np.float64),
        out[0],
        out[1],
        out[2],
        out[3],
        out[4],
        EQUITY_ZERO_TOLERANCE,
        derived[0],
        derived[1],
        derived[2],
        derived[3],
    )
    return out, derived, int(failing)


@kernel(nogil=True, inline="always")
def account_collateral(units: np.ndarray, a: int | np.int64, price: np.ndarray) -> tuple[float, float]:
    """(Σ_k price_k·units[a, k], Σ_k |that value|), USD, in asset order (units: `Book.haircut_units`):
    the one collateral sum of every fused kernel (the whole-book pass, the equity pass, the
    collateral-only tick), so all give the same bits."""
    collateral = 0.0
    gross = 0.0
    for k in range(units.shape[1]):
        balance = price[k] * units[a, k]
        collateral += balance
        gross += abs(balance)
    return collateral, gross


@kernel(nogil=True, inline="always")
def position_value(q: float, term: float, unit_value: float, coefficient: float) -> tuple[float, float]:
    """(value, gross) of one position, USD: q·(unit_value + coefficient·term) and |q·unit_value| +
    |q·coefficient·term| (the scale of equity's rounding error), for every fused pass alike."""
    return q * (unit_value + coefficient * term), abs(q * unit_value) + abs(q * coefficient * term)


def balance_values_usd(book: Book, price_usd: FloatArray) -> FloatArray:
    """`collateral.value_collateral(book.balances, ...).value_usd` from the book's haircut units:
    (A, K) USD, price x units. The numpy function stays the readable reference (and computes
    the effective haircuts too); this is the hot path's (a 1M x 6 matrix: ~0.19 s there, a
    multiply here once the book's units exist). Borrowings are (b·w)·P here and b·(P·w) there,
    so a borrowing's value may differ from the reference in the last bit."""
    if price_usd.shape != (book.assets.n_assets,):
        raise InputError("asset_price_usd", f"shape {price_usd.shape}, expected ({book.assets.n_assets},)")
    values: FloatArray = np.asarray(price_usd, dtype=np.float64)[None, :] * book.haircut_units
    return values


@kernel(parallel=True, nogil=True)
def _book_kernel(
    subset: bool,
    account_rows: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    quantity: np.ndarray,
    entry_term: np.ndarray,
    records: np.ndarray,
    n_tiers: int,
    units: np.ndarray,
    price: np.ndarray,
    out_collateral: np.ndarray,
    out_value: np.ndarray,
    out_im: np.ndarray,
    out_mm: np.ndarray,
    out_gross: np.ndarray,
    zero_tolerance: float,
    out_equity: np.ndarray,
    out_available: np.ndarray,
    out_ratio: np.ndarray,
    out_bankrupt: np.ndarray,
) -> int:
    """The five totals per account; when out_equity has a row per account (not 0), also what
    `MarginResult.pooled` derives from them (`result_kernels.pooled_account`, on the totals still
    in registers) and the count of accounts failing `account_invariants_hold` (returned; 0
    otherwise): a whole-book result without two more passes over its arrays."""
    # These three lines stay written out in both kernels: an inline helper for the account of
    # the j-th output (and prange over the conditional) measured the whole pass 2x slower.
    n_out = account_rows.shape[0] if subset else indptr.shape[0] - 1
    derive = out_equity.shape[0] > 0
    failing = 0
    for j in prange(n_out):
        a = np.int64(account_rows[j]) if subset else np.int64(j)  # one integer type (numba unifies)
        collateral, gross = account_collateral(units, a, price)
        value = 0.0
        im = 0.0
        mm = 0.0
        # Unsigned positions and instruments: no wraparound on any read (the column constants).
        for p in range(np.uint64(indptr[a]), np.uint64(indptr[a + 1])):
            i = np.uint64(indices[p])
            q = quantity[p]
            v, g = position_value(q, entry_term[p], records[i, UNIT_VALUE], records[i, COEFFICIENT])
            value += v
            gross += g
            size = abs(q)
            n = size * records[i, NOTIONAL]
            t = TIER0 + TIER_WIDTH * np.uint64(n >= records[i, TIER1 + TIER_FLOOR])
            if n >= records[i, t + TIER_WIDTH + TIER_FLOOR]:  # tiers 2+: rare (`tier_from_2`)
                t = tier_from_2(records, i, n, n_tiers)
            growth = records[i, RATE_PER_UNIT] * size * records[i, SIZE_UNITS]
            im += n * (records[i, t + TIER_IM_RATE] + growth) - records[i, t + TIER_IM_DEDUCTION]
            mm += n * (records[i, t + TIER_MM_RATE] + growth) - records[i, t + TIER_MM_DEDUCTION]
            if q < 0.0:
                im += size * records[i, IM_SHORT]
                mm += size * records[i, MM_SHORT]
            else:
                im += size * records[i, IM_LONG]
                mm += size * records[i, MM_LONG]
        out_collateral[j] = collateral
        out_value[j] = value
        out_im[j] = im
        out_mm[j] = mm
        out_gross[j] = gross
        if derive:
            equity, available, ratio, bankrupt = pooled_account(
                collateral, value, im, mm, gross, zero_tolerance
            )
            out_equity[j] = equity
            out_available[j] = available
            out_ratio[j] = ratio
            out_bankrupt[j] = bankrupt
            failing += 0 if account_invariants_hold(equity, im, mm, available, ratio, bankrupt) else 1
    return failing


@dataclass(frozen=True, slots=True)
class ValueTotals:
    """Per account, USD: what equity is made of (`BookTotals` without the requirements)."""

    collateral_value_usd: FloatArray
    position_value_usd: FloatArray
    gross_value_usd: FloatArray


def value_totals(
    book: Book, valuation: InstrumentValuation, asset_price_usd: FloatArray, rows: IntArray | None = None
) -> ValueTotals:
    """Collateral value, position value and gross value of every account (or of `rows`, sorted,
    read in place), the same float operations in the same order as `book_totals` (so the same
    bits) without its tier and option requirements: the equity pass of the risk-based models,
    whose requirement is their own, and the collateral-only tick's."""
    chosen = _chosen_rows(book, rows)
    out = tuple(np.empty(chosen.n) for _ in range(3))
    _value_kernel.for_work(chosen.work)(
        chosen.subset,
        chosen.account_rows,
        book.positions.indptr.astype(np.int64, copy=False),
        book.positions.indices,
        book.positions.data,
        book.entry_term,
        valuation.unit_value_usd,
        valuation.entry_coefficient_usd,
        book.haircut_units,
        np.ascontiguousarray(asset_price_usd, dtype=np.float64),
        *out,
    )
    return ValueTotals(collateral_value_usd=out[0], position_value_usd=out[1], gross_value_usd=out[2])


@kernel(parallel=True, nogil=True)
def _value_kernel(
    subset: bool,
    account_rows: np.ndarray,
    indptr: np.ndarray,
    indices: np.ndarray,
    quantity: np.ndarray,
    entry_term: np.ndarray,
    unit_value: np.ndarray,
    coefficient: np.ndarray,
    units: np.ndarray,
    price: np.ndarray,
    out_collateral: np.ndarray,
    out_value: np.ndarray,
    out_gross: np.ndarray,
) -> None:
    # _book_kernel's collateral, value and gross sums, term for term, without the requirements.
    n_out = account_rows.shape[0] if subset else indptr.shape[0] - 1
    for j in prange(n_out):
        a = np.int64(account_rows[j]) if subset else np.int64(j)  # one integer type (numba unifies)
        collateral, gross = account_collateral(units, a, price)
        value = 0.0
        for p in range(np.uint64(indptr[a]), np.uint64(indptr[a + 1])):  # unsigned: no wraparound
            i = np.uint64(indices[p])
            v, g = position_value(quantity[p], entry_term[p], unit_value[i], coefficient[i])
            value += v
            gross += g
        out_collateral[j] = collateral
        out_value[j] = value
        out_gross[j] = gross


def risk_based_result(
    name: str,
    book: Book,
    market: MarketState,
    valuation: InstrumentValuation,
    *,
    initial_margin_usd: FloatArray,
    maintenance_margin_usd: FloatArray,
) -> MarginResult:
    """A pooled result for a risk-based model (portfolio, sensitivity, VaR): the requirement is the
    model's, equity is model-independent (the same value pass as cross margin)."""
    values = value_totals(book, valuation, market.asset_prices(book.assets))
    return MarginResult.pooled(
        model=name,
        collateral_value_usd=values.collateral_value_usd,
        position_value_usd=values.position_value_usd,
        initial_margin_usd=initial_margin_usd,
        maintenance_margin_usd=maintenance_margin_usd,
        gross_value_usd=values.gross_value_usd,
    )

"""One cascade round on one set of accounts: what each liquidated account closes, the cash it
settles, the collateral it sells, and the deficit it leaves, in exact integer units.

Units (the integer side of the money boundary, `core.ledger.money`): positions in lots of
10**-QUANTITY_DECIMALS contracts, cash in 10**-CASH_DECIMALS USD, collateral in
10**-COLLATERAL_DECIMALS asset units. Every amount a trader receives rounds down and every amount
owed rounds up, so the venue never pays a unit it did not collect. Everything here is per account
(the rule for an account reads only that account's arrays), which is what lets accounts be split
across shards with the same result.

The rule for an account whose equity E is below its maintenance margin MM:
  - full policy, or E ≤ 0: close every position; partial policy: close the fraction
    f = (c·MM − E) / (c·MM − φ·N) of each position (c = exit coverage, φ = fee rate, N = the
    account's notional), which restores E/MM = c when MM is proportional to size (Mango's
    liquidation-end health; a convex tier schedule only does better);
  - each closed contract settles its value at the round's mark into cash (PnL for futures, market
    value for spot and options) and pays φ × notional to the insurance fund;
  - after a full close, borrowed assets are bought back; then, while cash is negative, the
    account's collateral is sold at market pro rata to its value (the flow that moves its price);
  - an account left with no position, no collateral and negative cash has a deficit of −cash: the
    venue's waterfall (core.stress.waterfall) covers it, and its cash is reset to zero.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numba
import numpy as np
import numpy.typing as npt

from crossmargin.core.book import compressed_slots
from crossmargin.core.checks import check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

QUANTITY_DECIMALS = 8
CASH_DECIMALS = 6
COLLATERAL_DECIMALS = 8
LOT = 10.0**-QUANTITY_DECIMALS  # contracts per lot
CASH_UNIT = 10.0**-CASH_DECIMALS  # USD per cash unit
COLLATERAL_UNIT = 10.0**-COLLATERAL_DECIMALS  # asset units per collateral unit


@dataclass(frozen=True, slots=True, kw_only=True)
class LiquidationRule:
    """partial: close only what restores `exit_coverage` (else everything); fee_rate on closed
    notional, to the insurance fund."""

    partial: bool = False
    exit_coverage: float = 1.25
    fee_rate: float = 0.005

    def __post_init__(self) -> None:
        check_range(self.exit_coverage, low=1.0, high=100.0, name="liquidation.exit_coverage")
        check_range(self.fee_rate, low=0.0, high=0.2, name="liquidation.fee_rate")


@dataclass(frozen=True, slots=True, kw_only=True)
class Holdings:
    """Mutable integer state of A accounts: position lots (nnz,) aligned with a fixed CSR pattern
    (indptr (A+1,), a closed position stays as an explicit zero), cash (A,) and collateral (A, K)
    units (column `cash_column` unused: cash is its own array)."""

    indptr: IntArray
    lots: IntArray
    cash_units: IntArray
    collateral_units: IntArray

    def __post_init__(self) -> None:
        if self.lots.dtype != np.int64 or self.cash_units.dtype != np.int64:
            raise InputError("holdings", "lots and cash must be int64 units")
        if self.collateral_units.dtype != np.int64 or self.collateral_units.shape[0] != self.cash_units.size:
            raise InputError("holdings.collateral_units", "must be int64, one row per account")

    @property
    def n_accounts(self) -> int:
        return int(self.cash_units.size)

    def copy(self) -> Holdings:
        return Holdings(
            indptr=self.indptr,
            lots=self.lots.copy(),
            cash_units=self.cash_units.copy(),
            collateral_units=self.collateral_units.copy(),
        )


@dataclass(frozen=True, slots=True)
class RoundFills:
    """What one round did to A accounts (all int64 units). Per liquidated account, `rows` (L,);
    per position of theirs, `slots` (P,) into the book's positions: closed lots (P,), signed like
    the position, and the deficit attributed to it (P,) by its share of the account's closed
    notional (for ADL). Per account (A,): fee, deficit left to the venue, liquidated flag. Per
    asset (K,): collateral sold (> 0) or bought back (< 0), summed over accounts."""

    rows: IntArray
    slots: IntArray
    closed_lots: IntArray
    position_deficit_units: IntArray
    fee_units: IntArray
    deficit_units: IntArray
    liquidated: BoolArray
    collateral_traded_units: IntArray


@dataclass(frozen=True, slots=True, kw_only=True)
class SlotPrices:
    """A round's per-contract value and notional (USD) for any position slot, gathered on demand
    from per-instrument figures: value = unit_value[i] + entry_coefficient[i] · entry_term[slot]
    (the engine's valuation, entry terms applied), notional = notional[i], i = instrument[slot].
    A round reads the liquidated accounts' slots only, not all nnz."""

    instrument: IntArray  # (nnz,)
    entry_term: FloatArray  # (nnz,)
    unit_value_usd: FloatArray  # (I,)
    entry_coefficient_usd: FloatArray  # (I,)
    notional_usd: FloatArray  # (I,)

    def value(self, slots: IntArray) -> FloatArray:
        i = self.instrument[slots]
        out: FloatArray = self.unit_value_usd[i] + self.entry_coefficient_usd[i] * self.entry_term[slots]
        return out

    def notional(self, slots: IntArray) -> FloatArray:
        out: FloatArray = self.notional_usd[self.instrument[slots]]
        return out


def segment_sum(values: IntArray, indptr: IntArray) -> IntArray:
    """Exact int64 sum of each CSR row's values, (A,) (empty rows give 0)."""
    counts = np.diff(indptr)
    out = np.zeros(counts.size, dtype=np.int64)
    nonempty = counts > 0
    if values.size:
        sums = np.add.reduceat(values, indptr[:-1][nonempty])
        out[nonempty] = sums
    return out


def funding_paid_units(
    indptr: IntArray, lots: IntArray, instrument: IntArray, notional_usd: FloatArray, carry: FloatArray
) -> IntArray:
    """Funding each account pays over a stress (A,), cash units: Σ over its positions of
    ceil(q · notional_i · carry_i / CASH_UNIT), q = lots · LOT contracts (a long pays carry > 0,
    a short receives; charges round up, receipts down). carry (I,): fraction of notional paid by a
    long perpetual. One compiled pass (the same float64 operations per position as the numpy
    expression; the sum is of integers, exact in any order)."""
    out = np.zeros(indptr.size - 1, dtype=np.int64)
    _funding_kernel(indptr, lots, instrument, notional_usd, carry, out)
    return out


@numba.njit(cache=True, nogil=True, fastmath=False)
def _funding_kernel(
    indptr: IntArray,
    lots: IntArray,
    instrument: IntArray,
    notional_usd: FloatArray,
    carry: FloatArray,
    out: IntArray,
) -> None:
    for a in range(indptr.shape[0] - 1):
        total = 0
        for p in range(indptr[a], indptr[a + 1]):
            i = instrument[p]
            paid = float(lots[p]) * LOT * notional_usd[i] * carry[i]
            total += math.ceil(paid / CASH_UNIT)
        out[a] = total


def close_fraction(
    equity_usd: FloatArray, maintenance_usd: FloatArray, notional_usd: FloatArray, rule: LiquidationRule
) -> FloatArray:
    """Fraction of every position each account closes this round (A,), in [0, 1] (module doc)."""
    liquidate = (equity_usd < maintenance_usd) & (maintenance_usd > 0.0)
    fraction = np.where(liquidate, 1.0, 0.0)
    if rule.partial:
        target = rule.exit_coverage * maintenance_usd
        denominator = target - rule.fee_rate * notional_usd
        with np.errstate(divide="ignore", invalid="ignore"):
            partial = (target - equity_usd) / denominator
        solvent = liquidate & (equity_usd > 0.0) & (denominator > 0.0)
        fraction = np.where(solvent, np.clip(partial, 0.0, 1.0), fraction)
    result: FloatArray = fraction
    return result


def liquidate_round(
    holdings: Holdings,
    *,
    equity_usd: FloatArray,
    maintenance_usd: FloatArray,
    prices: SlotPrices,
    asset_price_usd: FloatArray,
    rule: LiquidationRule,
) -> RoundFills:
    """Apply one round's rule to `holdings` in place and say what it did (module docstring).

    prices: value and notional per contract at this round's mark; asset_price_usd (K,) at this
    round."""
    indptr = holdings.indptr
    n_accounts = indptr.size - 1
    lots = holdings.lots
    under = np.flatnonzero((equity_usd < maintenance_usd) & (maintenance_usd > 0.0))
    notional_usd = np.zeros(n_accounts)
    if rule.partial and under.size:  # the partial rule needs each account's notional
        under_slots = compressed_slots(indptr, under)
        notional_usd[under] = np.bincount(
            np.repeat(np.arange(under.size), indptr[under + 1] - indptr[under]),
            weights=np.abs(lots[under_slots] * LOT) * prices.notional(under_slots),
            minlength=under.size,
        )
    fraction = close_fraction(equity_usd, maintenance_usd, notional_usd, rule)
    liquidated = fraction > 0.0
    fee_units = np.zeros(n_accounts, dtype=np.int64)
    traded = np.zeros(holdings.collateral_units.shape[1], dtype=np.int64)
    deficit = np.zeros(n_accounts, dtype=np.int64)
    rows = np.flatnonzero(liquidated)
    if rows.size == 0:
        none = np.zeros(0, dtype=np.int64)
        return RoundFills(rows, none, none, none, fee_units, deficit, liquidated, traded)
    # Only the liquidated accounts' positions from here on, closed and settled in one compiled pass.
    sub_counts = indptr[rows + 1] - indptr[rows]
    sub_indptr = np.zeros(rows.size + 1, dtype=np.int64)
    np.cumsum(sub_counts, out=sub_indptr[1:])
    closed = close_positions(holdings, rows, sub_indptr, fraction, prices, rule.fee_rate)
    slots, closed_sub = closed.slots, closed.closed_lots
    fee_units[rows] = closed.fee_units
    # The liquidated accounts' cash (L,) and collateral (L, K), gathered once and written back once.
    cash_rows = holdings.cash_units[rows] + closed.settled_units - closed.fee_units
    collateral = holdings.collateral_units[rows]
    unit_value = COLLATERAL_UNIT * asset_price_usd / CASH_UNIT  # cash units per collateral unit (K,)
    # Borrowed assets of fully liquidated accounts are bought back (cost rounds up). Only rows
    # that borrow: for the others every term below is zero.
    full = (fraction[rows] >= 1.0) & np.any(collateral < 0, axis=1)
    owed = np.minimum(collateral[full], 0)
    if np.any(owed):
        cash_rows[full] -= np.ceil(-owed * unit_value[None, :]).astype(np.int64).sum(axis=1)
        traded += owed.sum(axis=0)
        collateral[full] -= owed
    # Negative cash of a liquidated account is repaid by selling its collateral pro rata to value
    # (rows holding nothing to sell would sell nothing: left out).
    short = (cash_rows < 0) & np.any(collateral > 0, axis=1)
    if np.any(short):
        held = np.maximum(collateral[short], 0)
        worth = held * unit_value[None, :]
        total = worth.sum(axis=1)
        need = -cash_rows[short].astype(np.float64)
        share = np.where(total > need, need / np.where(total > 0.0, total, 1.0), 1.0)
        sold = np.minimum(held, np.ceil(held * share[:, None]).astype(np.int64))
        proceeds = np.floor(sold * unit_value[None, :]).astype(np.int64)
        cash_rows[short] += proceeds.sum(axis=1)
        collateral[short] -= sold
        traded += sold.sum(axis=0)

    # Deficit: nothing left to sell, nothing open, cash below zero.
    empty = ~np.any(collateral > 0, axis=1) & ~closed.still_open
    left = np.where(empty & (cash_rows < 0), -cash_rows, 0).astype(np.int64)
    deficit[rows] = left
    holdings.cash_units[rows] = cash_rows + left
    holdings.collateral_units[rows] = collateral
    position_deficit = split_deficit(left, closed.weight_usd, sub_indptr)
    return RoundFills(
        rows=rows,
        slots=slots,
        closed_lots=closed_sub,
        position_deficit_units=position_deficit,
        fee_units=fee_units,
        deficit_units=deficit,
        liquidated=liquidated,
        collateral_traded_units=traded,
    )


@dataclass(frozen=True, slots=True)
class ClosedPositions:
    """The positions of L liquidated accounts after `close_positions`: their slots (P,), lots
    closed (P,, signed like the position) and closed notional |q|·notional (P,, USD, the weight of
    the deficit split); per account (L,) the settled value and the fee (cash units) and whether
    any position is still open."""

    slots: IntArray
    closed_lots: IntArray
    weight_usd: FloatArray
    settled_units: IntArray
    fee_units: IntArray
    still_open: BoolArray


def close_positions(
    holdings: Holdings,
    rows: IntArray,
    sub_indptr: IntArray,
    fraction: FloatArray,
    prices: SlotPrices,
    fee_rate: float,
) -> ClosedPositions:
    """Close the fraction f of every position of the accounts `rows` (sorted) in place: ceil(|lots|
    · f) lots (all of them when f ≥ 1), sign kept; each settles floor(q · value / CASH_UNIT) and
    pays ceil(φ · |q| · notional / CASH_UNIT), q = closed lots · LOT. One compiled pass over those
    positions, with the float64 operations of the numpy formulas in the same order (so the same
    units), the per-account sums in integers."""
    n_slots = int(sub_indptr[-1])
    out = ClosedPositions(
        slots=np.empty(n_slots, dtype=np.int64),
        closed_lots=np.empty(n_slots, dtype=np.int64),
        weight_usd=np.empty(n_slots),
        settled_units=np.zeros(rows.size, dtype=np.int64),
        fee_units=np.zeros(rows.size, dtype=np.int64),
        still_open=np.zeros(rows.size, dtype=np.bool_),
    )
    _close_kernel(
        rows,
        holdings.indptr,
        holdings.lots,
        fraction,
        prices.instrument,
        prices.entry_term,
        prices.unit_value_usd,
        prices.entry_coefficient_usd,
        prices.notional_usd,
        float(fee_rate),
        out.slots,
        out.closed_lots,
        out.weight_usd,
        out.settled_units,
        out.fee_units,
        out.still_open,
    )
    return out


@numba.njit(cache=True, nogil=True, fastmath=False)
def _close_kernel(
    rows: IntArray,
    indptr: IntArray,
    lots: IntArray,
    fraction: FloatArray,
    instrument: IntArray,
    entry_term: FloatArray,
    unit_value: FloatArray,
    coefficient: FloatArray,
    notional: FloatArray,
    fee_rate: float,
    slots: IntArray,
    closed_lots: IntArray,
    weight: FloatArray,
    settled: IntArray,
    fee: IntArray,
    still_open: BoolArray,
) -> None:
    j = 0
    for n in range(rows.shape[0]):
        a = rows[n]
        f = fraction[a]
        for p in range(indptr[a], indptr[a + 1]):
            q = lots[p]
            size = abs(q)
            take = size if f >= 1.0 else min(size, np.int64(math.ceil(size * f)))
            closed = take if q > 0 else (-take if q < 0 else 0)
            quantity = closed * LOT
            i = instrument[p]
            value = unit_value[i] + coefficient[i] * entry_term[p]
            settled[n] += np.int64(math.floor(quantity * value / CASH_UNIT))  # receipts down
            fee[n] += np.int64(math.ceil(fee_rate * abs(quantity) * notional[i] / CASH_UNIT))  # charges up
            lots[p] = q - closed
            if lots[p] != 0:
                still_open[n] = True
            slots[j] = p
            closed_lots[j] = closed
            weight[j] = abs(quantity) * notional[i]
            j += 1


def load_kernels(holdings: Holdings, prices: SlotPrices) -> None:
    """Compile (or load from numba's cache) this module's kernels for these arrays' types, on
    no accounts: a shard does it when it is prepared, so the first round of its first stress
    does not pay ~0.1 s per kernel for it."""
    none = np.zeros(0, dtype=np.int64)
    fraction = np.zeros(holdings.n_accounts)
    close_positions(holdings, none, np.zeros(1, dtype=np.int64), fraction, prices, 0.0)
    split_deficit(none, np.zeros(0), np.zeros(1, dtype=np.int64))
    funding_paid_units(
        holdings.indptr[:1], holdings.lots, prices.instrument, prices.notional_usd, prices.notional_usd
    )


def split_deficit(deficit_units: IntArray, weight: FloatArray, indptr: IntArray) -> IntArray:
    """Each account's deficit (A,) over its positions (nnz,) ∝ weight, in whole units summing to
    the deficit exactly (floors, the remainder on the account's last weighted position). An
    account with a deficit but no weight keeps it unattributed (its positions get 0).

    One compiled pass: per account the weight total summed in position order from 0.0 (what
    np.bincount does), each share floor(d · w / total), the same float64 operations."""
    units = np.zeros(weight.size, dtype=np.int64)
    _split_kernel(
        np.asarray(deficit_units, dtype=np.int64),
        np.asarray(weight, dtype=np.float64),
        np.asarray(indptr, dtype=np.int64),
        units,
    )
    return units


@numba.njit(cache=True, nogil=True, fastmath=False)
def _split_kernel(deficit: IntArray, weight: FloatArray, indptr: IntArray, units: IntArray) -> None:
    for a in range(indptr.shape[0] - 1):
        if deficit[a] == 0:
            continue
        total = 0.0
        for p in range(indptr[a], indptr[a + 1]):
            total += weight[p]
        if not total > 0.0:
            continue
        d = float(deficit[a])
        given = 0
        last = -1
        for p in range(indptr[a], indptr[a + 1]):
            share = math.floor(d * weight[p] / total)
            units[p] = share
            given += share
            if weight[p] > 0.0:
                last = p
        if last >= 0:
            units[last] += deficit[a] - given

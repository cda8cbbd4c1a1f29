"""Accounts in shards (`StressShard`: its own RiskEngine over a slice of the book), what one
round of a shard reports (`ShardRound`) and its exact reduction across shards, and running them
(`ShardRunner`, `LocalShards`; adapters.dask runs them on a cluster through the same protocol)."""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin import MarginModel
from crossmargin.core.market import MarketState
from crossmargin.core.position_matrix import PositionMatrix
from crossmargin.core.pricing import entry_term, revalue
from crossmargin.core.stress.liquidation import (
    CASH_UNIT,
    COLLATERAL_UNIT,
    LOT,
    Holdings,
    LiquidationRule,
    SlotPrices,
    funding_paid_units,
    liquidate_round,
    load_kernels,
)
from crossmargin.core.stress.waterfall import Candidates
from crossmargin.engine.risk_engine import RiskEngine
from crossmargin.engine.stress.prepared import StressVenue
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


TOP_N = 10


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundMarket:
    """What every shard needs for a round: the market, collateral prices (K,), and at the first
    round of a stress the funding carry per instrument (I,) to settle."""

    market: MarketState
    asset_price_usd: FloatArray
    funding_carry: FloatArray | None = None
    record_shock: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ShardRound:
    """A shard's integer totals for one round (see `StressShard.liquidate`)."""

    closed_lots: IntArray  # (I,) signed, all liquidations
    closed_abs_lots: IntArray  # (I,)
    bankrupt_closed_lots: IntArray  # (I,) signed, accounts left with a deficit
    instrument_deficit_units: IntArray  # (I,)
    unattributed_deficit_units: int
    fee_units: int
    collateral_traded_units: IntArray  # (K,) sold > 0, bought back < 0
    liquidated_accounts: int
    # At the shock (record_shock): accounts under MM / zero, shortfall, loss and its largest.
    under_maintenance: int = 0
    under_zero: int = 0
    shortfall_units: int = 0
    loss_units: int = 0
    top_losses: tuple[tuple[int, str], ...] = ()


class StressShard:
    """A slice of the venue's accounts with its own RiskEngine and integer holdings.

    Everything here is per account; `account_offset` is the slice's first global row (ADL
    candidates are ranked in global order)."""

    def __init__(self, venue: StressVenue, model: MarginModel, *, account_offset: int = 0) -> None:
        book = venue.book
        self._venue = venue
        self._offset = account_offset
        self._instrument = book.positions.indices.astype(np.int64)
        # Positions of each instrument (ascending, so in account order), for ADL candidates.
        by_instrument = np.argsort(self._instrument, kind="stable")
        bounds = np.searchsorted(
            self._instrument[by_instrument], np.arange(book.instruments.n_instruments + 1)
        )
        self._slots_of = [by_instrument[a:b] for a, b in itertools.pairwise(bounds.tolist())]
        # Position -> account row, fixed for the shard's life (the CSR pattern never changes).
        self._account_of = np.repeat(
            np.arange(book.n_accounts, dtype=np.int64), np.diff(book.positions.indptr)
        )
        self._entry_term = entry_term(book.entry_price, book.instruments.reciprocal_entry[self._instrument])
        units = np.rint(book.balances / COLLATERAL_UNIT).astype(np.int64)
        cash = np.rint(book.balances[:, venue.cash_column] / CASH_UNIT).astype(np.int64)
        units[:, venue.cash_column] = 0
        self.holdings = Holdings(
            indptr=book.positions.indptr.astype(np.int64),
            lots=np.rint(book.positions.data / LOT).astype(np.int64),
            cash_units=cash,
            collateral_units=units,
        )
        self._asset_price = venue.market.asset_prices(book.assets).copy()
        # Float mirrors of the integer holdings, what the engine's Book reads; refreshed only where
        # a round changed something (a full rebuild per round cost 0.16 s at 1M accounts).
        self._quantity = np.zeros(0)
        self._balances = np.zeros((0, 0))
        self._refresh(None, None)
        self._touched_rows: list[IntArray] = []
        self.engine = RiskEngine(self._book_now(), venue.market, model)
        self._equity_today = self.engine.result.equity_usd.copy()
        self._prices = self._slot_prices()
        load_kernels(self.holdings, self._prices)  # now, not inside the first round

    @property
    def n_accounts(self) -> int:
        return self.holdings.n_accounts

    @property
    def account_ids(self) -> tuple[str, ...]:
        return tuple(self._venue.book.account_ids)

    def size(self) -> int:
        """Accounts in this shard (a method: runners call methods)."""
        return self.n_accounts

    def _touched(self) -> IntArray:
        """Sorted unique accounts changed since the last evaluation."""
        if not self._touched_rows:
            return np.zeros(0, dtype=np.int64)
        flags = np.zeros(self.n_accounts, dtype=np.bool_)
        for rows in self._touched_rows:
            flags[rows] = True
        touched: IntArray = np.flatnonzero(flags)
        return touched

    def _refresh(self, slots: IntArray | None, rows: IntArray | None, *, collateral: bool = True) -> None:
        """Float mirrors from the integer holdings: everything (None), or these positions/accounts
        (their cash only when `collateral` is False: ADL settles in cash and sells nothing)."""
        h = self.holdings
        cash = self._venue.cash_column
        if slots is None:
            self._quantity = (h.lots * LOT).astype(np.float64)
        else:
            self._quantity[slots] = h.lots[slots] * LOT
        if rows is None:
            self._balances = (h.collateral_units * COLLATERAL_UNIT).astype(np.float64)
            self._balances[:, cash] = h.cash_units * CASH_UNIT
            return
        if collateral:
            self._balances[rows] = h.collateral_units[rows] * COLLATERAL_UNIT
        self._balances[rows, cash] = h.cash_units[rows] * CASH_UNIT

    def _book_now(self) -> Book:
        book = self._venue.book
        positions = PositionMatrix.of(
            self._quantity, book.positions.indices, book.positions.indptr, book.positions.shape
        )
        return dataclasses.replace(book, positions=positions, balances=self._balances)

    def liquidate(self, round_market: RoundMarket, rule: LiquidationRule) -> ShardRound:
        """Settle funding (first round), re-margin at the round's market, liquidate (module doc)."""
        n_instruments = self._venue.book.instruments.n_instruments
        if round_market.funding_carry is not None:
            valuation = revalue(self._venue.book.instruments, round_market.market)
            self.holdings.cash_units[:] -= funding_paid_units(
                self.holdings.indptr,
                self.holdings.lots,
                self._instrument,
                valuation.notional_usd,
                round_market.funding_carry,
            )
            self._balances[:, self._venue.cash_column] = self.holdings.cash_units * CASH_UNIT
        same_prices = (
            round_market.funding_carry is None
            and _same_market(self.engine.market, round_market.market)
            and np.array_equal(self._asset_price, round_market.asset_price_usd)
        )
        self._asset_price = round_market.asset_price_usd
        if same_prices:  # prices as last round: only the accounts it changed can differ
            self.engine.on_holdings(self._book_now(), self._touched())
        else:
            market = round_market.market.with_asset_prices(round_market.asset_price_usd)
            self.engine.on_book(self._book_now(), market)
        self._touched_rows = []
        result = self.engine.result
        self._prices = self._slot_prices()
        # The engine's own array, not a copy: it changes only at the next round's re-margin, and
        # `candidates` (this round's ADL ranking) reads it before that.
        self._equity_round = result.equity_usd
        stats: dict[str, Any] = {}
        if round_market.record_shock:
            stats = self._shock_stats(result.equity_usd, result.maintenance_margin_usd)
        fills = liquidate_round(
            self.holdings,
            equity_usd=result.equity_usd,
            maintenance_usd=result.maintenance_margin_usd,
            prices=self._prices,
            asset_price_usd=round_market.asset_price_usd,
            rule=rule,
        )
        self._refresh(fills.slots, fills.rows)
        self._touched_rows.append(fills.rows)
        indptr = self.holdings.indptr
        counts = indptr[fills.rows + 1] - indptr[fills.rows]
        bankrupt_position = np.repeat(fills.deficit_units[fills.rows] > 0, counts)
        closed = fills.closed_lots
        position_deficit = fills.position_deficit_units
        on = self._instrument[fills.slots]
        return ShardRound(
            closed_lots=_sum_by(on, closed, n_instruments),
            closed_abs_lots=_sum_by(on, np.abs(closed), n_instruments),
            bankrupt_closed_lots=_sum_by(on, np.where(bankrupt_position, closed, 0), n_instruments),
            instrument_deficit_units=_sum_by(on, position_deficit, n_instruments),
            unattributed_deficit_units=int(fills.deficit_units.sum() - position_deficit.sum()),
            fee_units=int(fills.fee_units.sum()),
            collateral_traded_units=fills.collateral_traded_units,
            liquidated_accounts=int(fills.liquidated.sum()),
            **stats,
        )

    def _slot_prices(self) -> SlotPrices:
        """Per-contract value and notional at the engine's current valuation (gathered on demand)."""
        valuation = self.engine.valuation
        return SlotPrices(
            instrument=self._instrument,
            entry_term=self._entry_term,
            unit_value_usd=valuation.unit_value_usd,
            entry_coefficient_usd=valuation.entry_coefficient_usd,
            notional_usd=valuation.notional_usd,
        )

    def _shock_stats(self, equity_usd: FloatArray, maintenance_usd: FloatArray) -> dict[str, Any]:
        loss_units = np.floor(np.maximum(self._equity_today - equity_usd, 0.0) / CASH_UNIT).astype(np.int64)
        shortfall = np.ceil(np.maximum(-equity_usd, 0.0) / CASH_UNIT).astype(np.int64)
        k = min(TOP_N, loss_units.size)
        top = np.argpartition(-loss_units, k - 1)[:k] if k else np.zeros(0, dtype=np.int64)
        ids = self._venue.book.account_ids
        return {
            "under_maintenance": int(
                np.count_nonzero((equity_usd < maintenance_usd) & (maintenance_usd > 0.0))
            ),
            "under_zero": int(np.count_nonzero(equity_usd < 0.0)),
            "shortfall_units": int(shortfall.sum()),
            "loss_units": int(loss_units.sum()),
            "top_losses": tuple((int(loss_units[j]), ids[int(j)]) for j in top.tolist() if loss_units[j] > 0),
        }

    def account_ids_of(self, global_rows: Sequence[int]) -> dict[int, str]:
        """Ids of those global rows that are in this shard."""
        ids = self._venue.book.account_ids
        return {r: ids[r - self._offset] for r in global_rows if 0 <= r - self._offset < self.n_accounts}

    def candidates(self, requests: Sequence[tuple[int, int]]) -> list[tuple[Candidates, IntArray]]:
        """For each (instrument, winner sign): profitable delta-one positions of that sign on it,
        in account order, as ADL candidates (global rows), with their local slots."""
        out = []
        lots = self.holdings.lots
        notional = self.engine.valuation.notional_usd
        for instrument, sign in requests:
            held = self._slots_of[instrument]
            held = held[np.sign(lots[held]) == sign]  # the winners' side first: value only those
            value_held = lots[held] * LOT * self._prices.value(held)
            keep = value_held > 0.0
            slots, value = held[keep], value_held[keep]
            rows = self._account_of[slots]
            gross = np.abs(lots[slots]) * LOT * notional[instrument]
            equity = self._equity_round[rows]
            with np.errstate(divide="ignore"):
                leverage = np.where(equity > 0.0, gross / np.where(equity > 0.0, equity, 1.0), np.inf)
            cands = Candidates(
                account_row=rows + self._offset,
                lots=np.abs(lots[slots]),
                profit_units=np.floor(value / CASH_UNIT).astype(np.int64),
                profit_fraction=value / np.maximum(gross, 1e-300),
                leverage=leverage,
            )
            out.append((cands, slots))
        return out

    def apply_adl(self, assignments: Sequence[tuple[IntArray, IntArray, IntArray]]) -> None:
        """Close `lots` of each slot against the bankrupt side at the round's mark and charge the
        haircut: (slots, lots ≥ 0, haircut units) per request."""
        account_of = self._account_of
        for slots, lots, haircut in assignments:
            if slots.size == 0:
                continue
            signed = np.sign(self.holdings.lots[slots]) * lots
            settled = np.floor(signed * LOT * self._prices.value(slots) / CASH_UNIT).astype(np.int64)
            self.holdings.lots[slots] -= signed
            np.add.at(self.holdings.cash_units, account_of[slots], settled - haircut)
            rows = account_of[slots]  # slots ascending, so rows too: unique by a mask
            rows = rows[np.concatenate(([True], rows[1:] != rows[:-1]))] if rows.size else rows
            self._refresh(slots, rows, collateral=False)
            self._touched_rows.append(rows)

    def final_equity_units(self) -> IntArray:
        """Cash plus collateral at the last round's prices, by account, in cash units (floor)."""
        value = self.holdings.collateral_units * COLLATERAL_UNIT * self._asset_price
        equity: IntArray = self.holdings.cash_units + np.floor(value.sum(axis=1) / CASH_UNIT).astype(np.int64)
        return equity


def _sum_by(index: IntArray, values: IntArray, size: int) -> IntArray:
    out = np.zeros(size, dtype=np.int64)
    np.add.at(out, index, values)
    return out


def _same_market(a: MarketState, b: MarketState) -> bool:
    """Same prices, vols and time (NaN equal to NaN): a round at unchanged prices."""
    return a is b or (
        a.valuation_ns == b.valuation_ns
        and a.rate == b.rate
        and np.array_equal(a.index_price_usd, b.index_price_usd)
        and np.array_equal(a.mark_price, b.mark_price, equal_nan=True)
        and np.array_equal(a.implied_vol, b.implied_vol, equal_nan=True)
        and np.array_equal(a.forward_price_usd, b.forward_price_usd, equal_nan=True)
        and np.array_equal(a.funding_rate_8h, b.funding_rate_8h)
    )


class ShardRunner(Protocol):
    """Calls a `StressShard` method on every shard, with per-shard arguments, in shard order;
    returns the results in shard order (a local list, or Dask actors: adapters.dask)."""

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]: ...

    @property
    def n_shards(self) -> int: ...


@dataclass(slots=True)
class LocalShards:
    """Shards in this process (one by default): the single-process runner."""

    shards: list[StressShard]

    @classmethod
    def of(cls, venue: StressVenue, model: MarginModel, *, n_shards: int = 1) -> LocalShards:
        return cls(
            [StressShard(part, model, account_offset=offset) for part, offset in split_venue(venue, n_shards)]
        )

    def call(self, method: str, args: Sequence[tuple[Any, ...]]) -> list[Any]:
        return [getattr(shard, method)(*a) for shard, a in zip(self.shards, args, strict=True)]

    @property
    def n_shards(self) -> int:
        return len(self.shards)


def split_venue(venue: StressVenue, n_shards: int) -> list[tuple[StressVenue, int]]:
    """Contiguous, nearly equal slices of the accounts (global order kept), with their offsets."""
    if n_shards < 1:
        raise InputError("shards", "must be >= 1")
    bounds = np.linspace(0, venue.book.n_accounts, n_shards + 1).astype(np.int64)
    return [
        (dataclasses.replace(venue, book=venue.book.select(np.arange(lo, hi))), int(lo))
        for lo, hi in itertools.pairwise(bounds)
    ]


def _reduce(parts: Sequence[ShardRound]) -> ShardRound:
    """Exact integer sums of the shards' totals."""
    return ShardRound(
        closed_lots=np.sum([p.closed_lots for p in parts], axis=0),
        closed_abs_lots=np.sum([p.closed_abs_lots for p in parts], axis=0),
        bankrupt_closed_lots=np.sum([p.bankrupt_closed_lots for p in parts], axis=0),
        instrument_deficit_units=np.sum([p.instrument_deficit_units for p in parts], axis=0),
        unattributed_deficit_units=sum(p.unattributed_deficit_units for p in parts),
        fee_units=sum(p.fee_units for p in parts),
        collateral_traded_units=np.sum([p.collateral_traded_units for p in parts], axis=0),
        liquidated_accounts=sum(p.liquidated_accounts for p in parts),
    )


def _merge_shock_stats(parts: Sequence[ShardRound]) -> dict[str, Any]:
    top = sorted((loss for p in parts for loss in p.top_losses), key=lambda t: (-t[0], t[1]))[:TOP_N]
    return {
        "under_maintenance": sum(p.under_maintenance for p in parts),
        "under_zero": sum(p.under_zero for p in parts),
        "shortfall_units": sum(p.shortfall_units for p in parts),
        "loss_units": sum(p.loss_units for p in parts),
        "top_losses": tuple(top),
    }


def _concat_candidates(parts: Sequence[Candidates]) -> Candidates:
    return Candidates(
        account_row=np.concatenate([c.account_row for c in parts]),
        lots=np.concatenate([c.lots for c in parts]),
        profit_units=np.concatenate([c.profit_units for c in parts]),
        profit_fraction=np.concatenate([c.profit_fraction for c in parts]),
        leverage=np.concatenate([c.leverage for c in parts]),
    )

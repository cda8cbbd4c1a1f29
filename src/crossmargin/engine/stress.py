"""Venue-wide stress and cascading liquidations on the long-lived engine.

A stress is a scenario set (`core.scenarios.ScenarioSet`: price factors per risk factor, vol
shifts per instrument; a historical window, a hypothetical shock, a depeg) put through the
engine's one revaluation path. Two uses of it:

- `screen`: the whole set at once through `revalue_scenarios` (the scenario pass portfolio
  margin and VaR use): every account's equity after every scenario, no liquidation;
- `run_cascade`: one scenario (or a path of them) as rounds. Each round prices the venue at the
  shocked prices times the impact of the liquidation flow so far (`core.stress.impact`),
  re-margins every account with `RiskEngine.on_book`, liquidates those under maintenance
  (`core.stress.liquidation`), covers deficits with the insurance fund and ADL
  (`core.stress.waterfall`), and feeds the closed positions and sold collateral back as flow.
  It stops at the fixed point: a round that liquidates nothing. A forward stress is a cascade
  without impact.

Accounts live in shards (`StressShard`, each its own RiskEngine over a slice of the book); what
crosses shards is integer (lots, cash units), reduced by exact sums, and candidates for ADL in
global account order, so any sharding gives the same result as one shard (adapters.dask runs the
shards on a Dask cluster through the same `ShardRunner` protocol).

Money: risk maths in float64 (the engine's valuation and margin); holdings, fees, deficits, the
fund and haircuts in integer units (core.stress.liquidation), converted in one place per amount.
"""

from __future__ import annotations

import dataclasses
import itertools
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp

from crossmargin.core.assets import AssetTable
from crossmargin.core.book import Book
from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.margin import MarginModel
from crossmargin.core.market import MarketState
from crossmargin.core.position_matrix import PositionMatrix
from crossmargin.core.pricing import entry_term, revalue
from crossmargin.core.scenarios import MIN_SHOCKED_VOL, ScenarioSet, revalue_scenarios
from crossmargin.core.stress.historical import WindowMove
from crossmargin.core.stress.impact import NO_IMPACT, SquareRootImpact
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
from crossmargin.core.stress.reverse import ReverseResult, smallest_breaking_scale
from crossmargin.core.stress.waterfall import Candidates, DeficitTotals, deleverage, fund_stage
from crossmargin.engine.risk_engine import RiskEngine
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

CASH_SYMBOL = "USD"
STABLECOINS = frozenset({"USDC", "USDT", "DAI", "BUSD", "FDUSD", "USDE"})  # no data: par, not the proxy
TOP_N = 10


# -- the shock --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Shock:
    """One stress state relative to today: price factor per risk factor (symbols, (F,)), additive
    implied-vol shift per instrument (I,), and funding paid over the stress by a long perpetual
    as a fraction of its notional (I,) (receivers get it)."""

    label: str
    factors: tuple[str, ...]
    price_factor: FloatArray
    vol_shift: FloatArray
    funding_carry: FloatArray

    def scaled(self, scale: float) -> Shock:
        """The move `scale` times as large in log space (prices), linearly in vol and funding."""
        return dataclasses.replace(
            self,
            label=f"{self.label} x{scale:.4g}",
            price_factor=np.exp(scale * np.log(self.price_factor)),
            vol_shift=scale * self.vol_shift,
            funding_carry=scale * self.funding_carry,
        )


def shocks_of(scenarios: ScenarioSet, *, funding_carry: FloatArray | None = None) -> list[Shock]:
    """Each row of a scenario set as a Shock (funding_carry (S, I) when the set has funding)."""
    n_instruments = scenarios.vol_shift.shape[1]
    carry = np.zeros((scenarios.n_scenarios, n_instruments)) if funding_carry is None else funding_carry
    return [
        Shock(
            label=scenarios.labels[s],
            factors=scenarios.factors,
            price_factor=scenarios.price_factor[s].copy(),
            vol_shift=scenarios.vol_shift[s].copy(),
            funding_carry=carry[s].copy(),
        )
        for s in range(scenarios.n_scenarios)
    ]


def hypothetical_shock(
    book: Book, *, label: str, moves: Mapping[str, float], vol_shift: Mapping[str, float] | None = None
) -> Shock:
    """Shocks per symbol (moves: fraction, -0.12 = -12 %; a stablecoin's move is its depeg) and
    additive vol shifts per underlying (0.2 = +20 vol points on every option on it)."""
    factors = risk_factors(book)
    factor = np.ones(len(factors))
    for symbol, move in moves.items():
        if symbol not in factors:
            raise InputError(f"shock.moves[{symbol}]", "not an underlying or collateral asset of the book")
        if not move > -1.0:
            raise InputError(f"shock.moves[{symbol}]", f"a move must be > -100 %, got {move!r}")
        factor[factors.index(symbol)] = 1.0 + move
    shift = np.zeros(book.instruments.n_instruments)
    underlying_of = np.asarray(book.instruments.underlyings, dtype=object)[book.instruments.underlying_index]
    for symbol, points in (vol_shift or {}).items():
        if symbol not in book.instruments.underlyings:
            raise InputError(f"shock.vol_shift[{symbol}]", "not an underlying of the book")
        shift[(underlying_of == symbol) & book.instruments.is_option] = points
    return Shock(
        label=label,
        factors=factors,
        price_factor=factor,
        vol_shift=shift,
        funding_carry=np.zeros(book.instruments.n_instruments),
    )


def window_shock(
    venue: StressVenue, move: WindowMove, *, trough: bool = False, proxy: str = "BTC"
) -> tuple[Shock, tuple[str, ...]]:
    """A historical window's moves as a Shock on the venue's risk factors: the joint close-to-close
    move (or each asset's trough); a factor the window has no data for moves like `proxy`, a
    stablecoin without data stays at par (both named in the second return value); the cash asset
    never moves. Options' vols move by the window's
    relative implied-vol change (BTC DVOL, the only implied vol in the data, for every
    underlying), and every perpetual pays the window's funding (BTC's, likewise)."""
    book = venue.book
    factors = risk_factors(book)
    values = move.trough_factor if trough else move.close_factor
    by_symbol = dict(zip(move.symbols, values.tolist(), strict=True))
    proxy_move = by_symbol.get(proxy, float("nan"))
    factor = np.ones(len(factors))
    proxied = []
    for n, symbol in enumerate(factors):
        if symbol == CASH_SYMBOL:
            continue
        value = by_symbol.get(symbol, float("nan"))
        if not np.isfinite(value) and symbol in STABLECOINS:
            proxied.append(f"{symbol} (held at par)")
            continue
        if not np.isfinite(value):
            if not np.isfinite(proxy_move):
                raise InputError(f"window[{move.window.name}]", f"no data for {symbol} nor its proxy {proxy}")
            value = proxy_move
            proxied.append(symbol)
        factor[n] = value
    instruments = book.instruments
    relative = move.vol_relative_change if np.isfinite(move.vol_relative_change) else 0.0
    base_vol = np.where(instruments.is_option, venue.market.implied_vol, 0.0)
    carry = np.where(
        instruments.kind == InstrumentKind.PERPETUAL,
        move.funding_sum if np.isfinite(move.funding_sum) else 0.0,
        0.0,
    )
    shock = Shock(
        label=f"{move.window.name}{' trough' if trough else ''}",
        factors=factors,
        price_factor=factor,
        vol_shift=np.where(instruments.is_option, base_vol * relative, 0.0),
        funding_carry=carry,
    )
    return shock, tuple(proxied)


def shocks_scenario_set(shocks: Sequence[Shock]) -> ScenarioSet:
    """Shocks as one ScenarioSet (one group per shock), for `screen`."""
    return ScenarioSet(
        factors=shocks[0].factors,
        price_factor=np.array([s.price_factor for s in shocks]),
        vol_shift=np.array([s.vol_shift for s in shocks]),
        weight=np.ones(len(shocks)),
        group=np.arange(len(shocks), dtype=np.int64),
        labels=tuple(s.label for s in shocks),
    )


def risk_factors(book: Book) -> tuple[str, ...]:
    """The book's risk factors: its underlyings, then collateral assets of other names."""
    under = tuple(book.instruments.underlyings)
    return under + tuple(s for s in book.assets.symbols if s not in under)


# -- the venue as the stress sees it ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StressVenue:
    """A book prepared for stress: a USD cash asset (where realised PnL, fees and sale proceeds
    settle) appended if the book has none, and today's market with every option priced by
    Black-76 at its implied vol (as `revalue_scenarios` prices scenario P&L: a venue mark off the
    model never shows up as stress P&L)."""

    book: Book
    market: MarketState
    cash_column: int

    @property
    def factors(self) -> tuple[str, ...]:
        return risk_factors(self.book)


def prepare_venue(book: Book, market: MarketState) -> StressVenue:
    """`StressVenue` of a book and its market (docstring there)."""
    if CASH_SYMBOL in book.assets.index:
        cash_column = book.assets.index[CASH_SYMBOL]
    else:
        market = dataclasses.replace(
            market,
            asset_symbols=(*book.assets.symbols, CASH_SYMBOL),
            asset_price_usd=np.append(market.asset_prices(book.assets), 1.0),  # USD cash at par
        )
        book = _with_cash_asset(book)
        cash_column = book.assets.n_assets - 1
    valuation = revalue(book.instruments, market)
    option = book.instruments.is_option
    base = dataclasses.replace(
        market,
        mark_price=np.where(option, np.nan, market.mark_price),
        implied_vol=np.where(option, valuation.implied_vol, market.implied_vol),
        forward_price_usd=np.where(option, valuation.forward_usd, market.forward_price_usd),
    )
    return StressVenue(book=book, market=base, cash_column=cash_column)


def _with_cash_asset(book: Book) -> Book:
    a = book.assets
    pad = np.full((1, a.tier_floor.shape[1]), np.inf)
    pad[0, 0] = 0.0
    assets = AssetTable(
        symbols=(*a.symbols, CASH_SYMBOL),
        tier_floor=np.vstack([a.tier_floor, pad]),
        tier_haircut=np.vstack([a.tier_haircut, np.zeros((1, a.tier_haircut.shape[1]))]),
        tier_value_below=np.vstack([a.tier_value_below, np.zeros((1, a.tier_value_below.shape[1]))]),
        liability_weight=np.append(a.liability_weight, 1.0),
        borrow_rate_apr=np.append(a.borrow_rate_apr, 0.0),
        index={**a.index, CASH_SYMBOL: a.n_assets},
    )
    balances = np.hstack([book.balances, np.zeros((book.n_accounts, 1))])
    return dataclasses.replace(book, assets=assets, balances=balances, isolated_collateral=None)


def shocked_market(
    venue_market: MarketState,
    asset_price_usd: FloatArray,
    book: Book,
    factors: Sequence[str],
    price_factor: FloatArray,
    vol_shift: FloatArray,
) -> tuple[MarketState, FloatArray]:
    """Today's market and collateral prices (K,) moved by a factor per risk factor (F,): index,
    delta-one marks and option forwards of an underlying's complex together, collateral of the same
    name with them; vols shifted additively (never below MIN_SHOCKED_VOL). The collateral prices
    are returned beside the market too (the liquidation rules read them as an array)."""
    column = {f: n for n, f in enumerate(factors)}
    padded = np.append(price_factor, 1.0)
    under = np.array([column.get(u, -1) for u in venue_market.underlyings], dtype=np.int64)
    f_under = padded[under]
    f_inst = f_under[book.instruments.underlying_index]
    option = book.instruments.is_option
    vol = np.where(
        option, np.maximum(venue_market.implied_vol + vol_shift, MIN_SHOCKED_VOL), venue_market.implied_vol
    )
    assets = np.array([column.get(s, -1) for s in book.assets.symbols], dtype=np.int64)
    shocked_asset_usd = asset_price_usd * padded[assets]
    market = dataclasses.replace(
        venue_market,
        index_price_usd=venue_market.index_price_usd * f_under,
        mark_price=venue_market.mark_price * f_inst,  # NaN stays NaN (defaults follow the index)
        forward_price_usd=venue_market.forward_price_usd * f_inst,
        implied_vol=vol,
        asset_price_usd=shocked_asset_usd,
    )
    return market, shocked_asset_usd


# -- the scenario pass: every account after every scenario ------------------------------------


def screen(
    venue: StressVenue, scenarios: ScenarioSet, *, funding_carry: FloatArray | None = None
) -> FloatArray:
    """Every account's P&L (A, S) USD in every scenario, without liquidation: one
    `revalue_scenarios` of the set, then the book's two sparse products and its collateral
    (haircut units × price × Δfactor), minus funding paid (Q @ notional·carry)."""
    book, market = venue.book, venue.market
    valuation = revalue(book.instruments, market)
    reval = revalue_scenarios(book.instruments, book.assets, market, valuation, scenarios)
    positions = book.positions.to_scipy()
    term = book.entry_term
    weighted = sp.csr_array(
        (positions.data * term, positions.indices, positions.indptr), shape=positions.shape
    )
    pnl: FloatArray = positions @ reval.d_unit_value_usd + weighted @ reval.d_entry_coefficient_usd
    indptr, asset, units = book.balance_csr
    value = sp.csr_array(
        (units * market.asset_prices(book.assets)[asset], asset, indptr),
        shape=(book.n_accounts, book.assets.n_assets),
    )
    pnl = pnl + value @ reval.d_asset_factor
    if funding_carry is not None:
        pnl = pnl - positions @ (valuation.notional_usd[:, None] * funding_carry.T)
    return np.asarray(pnl)


# -- one shard of accounts --------------------------------------------------------------------


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


# -- running shards ---------------------------------------------------------------------------


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


# -- the cascade ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class Policy:
    """A venue's liquidation policy: the round rule, the ADL policy (None: fund then bad debt)."""

    name: str
    rule: LiquidationRule = field(default_factory=LiquidationRule)
    adl_policy: str | None = "queue"
    seed: int = 0


def policies(*, fee_rate: float = 0.005, exit_coverage: float = 1.25) -> list[Policy]:
    """Every policy the engine has: full or partial close, times each ADL policy or none."""
    out = []
    for partial in (False, True):
        rule = LiquidationRule(partial=partial, exit_coverage=exit_coverage, fee_rate=fee_rate)
        for adl in ("queue", "random_start", "pro_rata", "risk_aware", None):
            name = f"{'partial' if partial else 'full'}/{adl or 'no-adl'}"
            out.append(Policy(name=name, rule=rule, adl_policy=adl))
    return out


@dataclass(frozen=True, slots=True, kw_only=True)
class RoundRow:
    """One round of a cascade: prices (F,) it ran at, what it liquidated, and the venue after."""

    step: int
    round: int
    price_factor: FloatArray
    liquidated_accounts: int
    liquidated_notional_usd: float
    notional_by_underlying_usd: dict[str, float]
    collateral_sold_usd: dict[str, float]
    fees_usd: float
    deficit_usd: float
    fund_paid_usd: float
    fund_usd: float
    adl_contracts: float
    adl_notional_usd: float
    adl_haircut_usd: float
    bad_debt_usd: float
    flow_usd: dict[str, float]

    @property
    def active(self) -> bool:
        return self.liquidated_accounts > 0 or self.adl_contracts > 0 or self.deficit_usd > 0


@dataclass(frozen=True, slots=True, kw_only=True)
class CascadeResult:
    """A cascade's path and the venue-wide report (docs/stress.md explains every field)."""

    label: str
    policy: str
    factors: tuple[str, ...]
    n_accounts: int
    rounds: tuple[RoundRow, ...]
    fund_start_usd: float
    under_maintenance: int
    under_zero: int
    shortfall_usd: float
    loss_usd: float
    top_losses: tuple[tuple[str, float], ...]
    adl_bearers: tuple[tuple[str, float], ...]
    converged: bool

    @property
    def active_rounds(self) -> int:
        return sum(r.active for r in self.rounds)

    @property
    def fund_end_usd(self) -> float:
        return self.rounds[-1].fund_usd if self.rounds else self.fund_start_usd

    @property
    def fund_used_usd(self) -> float:
        return sum(r.fund_paid_usd for r in self.rounds)

    @property
    def bad_debt_usd(self) -> float:
        return sum(r.bad_debt_usd for r in self.rounds)

    @property
    def deficit_usd(self) -> float:
        return sum(r.deficit_usd for r in self.rounds)

    @property
    def liquidated_notional_usd(self) -> float:
        return sum(r.liquidated_notional_usd for r in self.rounds)

    @property
    def adl_notional_usd(self) -> float:
        return sum(r.adl_notional_usd for r in self.rounds)

    @property
    def adl_haircut_usd(self) -> float:
        return sum(r.adl_haircut_usd for r in self.rounds)

    @property
    def top10_loss_share(self) -> float:
        return sum(v for _, v in self.top_losses) / self.loss_usd if self.loss_usd > 0 else 0.0

    def notional_by_underlying_usd(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.rounds:
            for k, v in r.notional_by_underlying_usd.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def collateral_sold_usd(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for r in self.rounds:
            for k, v in r.collateral_sold_usd.items():
                out[k] = out.get(k, 0.0) + v
        return out

    def summary(self) -> dict[str, Any]:
        """The venue-wide report as plain JSON values."""
        return {
            "scenario": self.label,
            "policy": self.policy,
            "accounts": self.n_accounts,
            "under_maintenance": self.under_maintenance,
            "under_zero": self.under_zero,
            "shortfall_usd": self.shortfall_usd,
            "loss_usd": self.loss_usd,
            "top10_loss_share": self.top10_loss_share,
            "top_losses": [{"account": a, "loss_usd": v} for a, v in self.top_losses],
            "rounds": self.active_rounds,
            "converged": self.converged,
            "liquidated_notional_usd": self.liquidated_notional_usd,
            "liquidated_by_underlying_usd": self.notional_by_underlying_usd(),
            "collateral_sold_usd": self.collateral_sold_usd(),
            "deficit_usd": self.deficit_usd,
            "fund_start_usd": self.fund_start_usd,
            "fund_used_usd": self.fund_used_usd,
            "fund_end_usd": self.fund_end_usd,
            "adl_notional_usd": self.adl_notional_usd,
            "adl_haircut_usd": self.adl_haircut_usd,
            "adl_bearers": [{"account": a, "haircut_usd": v} for a, v in self.adl_bearers],
            "bad_debt_usd": self.bad_debt_usd,
            "final_price_factor": dict(zip(self.factors, self.rounds[-1].price_factor.tolist(), strict=True))
            if self.rounds
            else {},
            "path": [
                {
                    "step": r.step,
                    "round": r.round,
                    "price_factor": dict(zip(self.factors, r.price_factor.tolist(), strict=True)),
                    "liquidated_accounts": r.liquidated_accounts,
                    "liquidated_notional_usd": r.liquidated_notional_usd,
                    "fund_usd": r.fund_usd,
                    "adl_notional_usd": r.adl_notional_usd,
                    "bad_debt_usd": r.bad_debt_usd,
                }
                for r in self.rounds
            ],
        }


Progress = Callable[[int, int], None]


def run_cascade(
    runner: ShardRunner,
    venue: StressVenue,
    path: Sequence[Shock],
    *,
    policy: Policy,
    insurance_fund_usd: float,
    impact: SquareRootImpact = NO_IMPACT,
    max_rounds: int = 50,
    progress: Progress | None = None,
) -> CascadeResult:
    """Run a shock path through rounds to the fixed point (module docstring).

    `path`: one Shock, or steps of a price path (each relative to today; e.g. the hour of a crash in
    four steps); every step runs rounds until one liquidates nothing (at most `max_rounds`). The
    first round of the first step settles the funding carry and records the venue-wide report.
    A runner is used by one cascade: its shards' holdings change as it runs. The driver reads only
    the venue's instruments, assets and market (`venue.book` may hold no account: out of core)."""
    if not path:
        raise InputError("path", "needs at least one shock")
    if max_rounds < 1:
        raise InputError("max_rounds", "must be >= 1")
    book = venue.book
    instruments = book.instruments
    factors = venue.factors
    for shock in path:
        if shock.factors != factors:
            raise InputError("shock.factors", "must be the venue's risk factors (risk_factors(book))")
    fund = int(np.floor(insurance_fund_usd / CASH_UNIT))
    fund_start = fund
    flow = np.zeros(len(factors))
    rows: list[RoundRow] = []
    bearer_rows: list[IntArray] = []
    bearer_units: list[IntArray] = []
    shock_stats: dict[str, Any] = {}
    rng = np.random.default_rng(policy.seed)
    converged = True
    factor_of_instrument = np.array([factors.index(u) for u in instruments.underlyings], dtype=np.int64)[
        instruments.underlying_index
    ]
    factor_of_asset = np.array([factors.index(s) for s in book.assets.symbols], dtype=np.int64)
    spot_today = revalue(instruments, venue.market).spot_usd
    today_asset_usd = venue.market.asset_prices(venue.book.assets)
    n = runner.n_shards
    total_rounds = len(path) * max_rounds
    for step, shock in enumerate(path):
        step_converged = False
        for round_number in range(1, max_rounds + 1):
            first = step == 0 and round_number == 1
            factor = shock.price_factor * impact.factor(factors, flow)
            market, asset_price = shocked_market(
                venue.market, today_asset_usd, book, factors, factor, shock.vol_shift
            )
            round_market = RoundMarket(
                market=market,
                asset_price_usd=asset_price,
                funding_carry=shock.funding_carry if first and np.any(shock.funding_carry) else None,
                record_shock=first,
            )
            parts: list[ShardRound] = runner.call("liquidate", [(round_market, policy.rule)] * n)
            totals = _reduce(parts)
            if first:
                shock_stats = _merge_shock_stats(parts)
            stage = fund_stage(
                fund,
                DeficitTotals(
                    fee_units=totals.fee_units,
                    instrument_deficit_units=totals.instrument_deficit_units,
                    unattributed_deficit_units=totals.unattributed_deficit_units,
                    bankrupt_closed_lots=totals.bankrupt_closed_lots,
                ),
            )
            fund = stage.fund_units
            valuation = revalue(instruments, market)
            bad_debt = stage.unattributed_bad_debt_units
            adl_lots = 0
            adl_notional = 0.0
            adl_haircut = 0
            todo = [
                int(i)
                for i in np.flatnonzero(stage.remaining_units > 0)
                if totals.bankrupt_closed_lots[i] != 0 and _deleverageable(instruments.kind[i])
            ]
            bad_debt += int(stage.remaining_units.sum()) - sum(int(stage.remaining_units[i]) for i in todo)
            if todo and policy.adl_policy is None:
                bad_debt += sum(int(stage.remaining_units[i]) for i in todo)
            elif todo and policy.adl_policy is not None:
                requests = [(i, -int(np.sign(totals.bankrupt_closed_lots[i]))) for i in todo]
                found = runner.call("candidates", [(requests,)] * n)
                assignments: list[list[tuple[IntArray, IntArray, IntArray]]] = [[] for _ in range(n)]
                for r, instrument in enumerate(todo):
                    per_shard = [shard_found[r] for shard_found in found]
                    merged = _concat_candidates([c for c, _ in per_shard])
                    outcome = deleverage(
                        merged,
                        remaining_units=int(stage.remaining_units[instrument]),
                        deficit_units=int(totals.instrument_deficit_units[instrument]),
                        bankrupt_lots=abs(int(totals.bankrupt_closed_lots[instrument])),
                        policy=policy.adl_policy,
                        rng=rng,
                    )
                    fund += outcome.overshoot_units
                    bad_debt += outcome.bad_debt_units
                    adl_lots += int(outcome.lots.sum())
                    adl_notional += (
                        float(outcome.lots.sum()) * LOT * float(valuation.notional_usd[instrument])
                    )
                    adl_haircut += outcome.covered_units
                    start = 0
                    for s, (cands, slots) in enumerate(per_shard):
                        size = cands.lots.size
                        lots = outcome.lots[start : start + size]
                        haircut = outcome.haircut_units[start : start + size]
                        assignments[s].append((slots, lots, haircut))
                        start += size
                    hit = outcome.haircut_units > 0
                    bearer_rows.append(merged.account_row[hit])
                    bearer_units.append(outcome.haircut_units[hit])
                runner.call("apply_adl", [(a,) for a in assignments])
            # Flow into the market: closing a long sells (negative), collateral sold sells too. Q is
            # a quantity of the asset (contracts × delta in units, collateral units) valued at today's
            # price, like V: the law's Q/V is a ratio of quantities. Valued at the crashed price
            # instead, a larger shock would sell the same coins as fewer dollars and move the price
            # less (a non-monotone cascade hypothesis found).
            closed_quantity = totals.closed_lots * LOT
            round_flow = np.zeros(len(factors))
            np.add.at(round_flow, factor_of_instrument, -closed_quantity * valuation.delta_usd * spot_today)
            traded_usd = totals.collateral_traded_units * COLLATERAL_UNIT * asset_price
            traded_today = totals.collateral_traded_units * COLLATERAL_UNIT * today_asset_usd
            np.add.at(round_flow, factor_of_asset, -traded_today)
            gross = totals.closed_abs_lots * LOT * valuation.notional_usd
            by_under = np.bincount(
                instruments.underlying_index, weights=gross, minlength=len(instruments.underlyings)
            )
            row = RoundRow(
                step=step,
                round=round_number,
                price_factor=factor,
                liquidated_accounts=totals.liquidated_accounts,
                liquidated_notional_usd=float(gross.sum()),
                notional_by_underlying_usd={
                    u: float(v) for u, v in zip(instruments.underlyings, by_under, strict=True) if v > 0
                },
                collateral_sold_usd={
                    s: float(v) for s, v in zip(book.assets.symbols, traded_usd, strict=True) if v != 0
                },
                fees_usd=totals.fee_units * CASH_UNIT,
                deficit_usd=(int(totals.instrument_deficit_units.sum()) + totals.unattributed_deficit_units)
                * CASH_UNIT,
                fund_paid_usd=stage.fund_paid_units * CASH_UNIT,
                fund_usd=fund * CASH_UNIT,
                adl_contracts=adl_lots * LOT,
                adl_notional_usd=adl_notional,
                adl_haircut_usd=adl_haircut * CASH_UNIT,
                bad_debt_usd=bad_debt * CASH_UNIT,
                flow_usd={f: float(v) for f, v in zip(factors, round_flow, strict=True) if v != 0.0},
            )
            rows.append(row)
            flow = flow + round_flow
            if progress is not None:
                progress(step * max_rounds + round_number, total_rounds)
            if not row.active:
                step_converged = True
                break
        converged = converged and step_converged
    if progress is not None:
        progress(total_rounds, total_rounds)
    top_losses = tuple((a, v * CASH_UNIT) for v, a in shock_stats.get("top_losses", ()))
    n_accounts = sum(runner.call("size", [()] * n))
    bearers = _top_bearers(runner, bearer_rows, bearer_units, n_accounts)
    return CascadeResult(
        label=path[0].label if len(path) == 1 else f"{path[0].label} .. {path[-1].label}",
        policy=policy.name,
        factors=factors,
        n_accounts=n_accounts,
        rounds=tuple(rows),
        fund_start_usd=fund_start * CASH_UNIT,
        under_maintenance=shock_stats.get("under_maintenance", 0),
        under_zero=shock_stats.get("under_zero", 0),
        shortfall_usd=shock_stats.get("shortfall_units", 0) * CASH_UNIT,
        loss_usd=shock_stats.get("loss_units", 0) * CASH_UNIT,
        top_losses=top_losses,
        adl_bearers=bearers,
        converged=converged,
    )


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


def _top_bearers(
    runner: ShardRunner, rows: Sequence[IntArray], units: Sequence[IntArray], n_accounts: int
) -> tuple[tuple[str, float], ...]:
    """The TOP_N accounts by total ADL haircut (USD), ties by global row."""
    if not rows:
        return ()
    total = np.zeros(n_accounts, dtype=np.int64)
    np.add.at(total, np.concatenate(rows), np.concatenate(units))
    k = min(TOP_N, int(np.count_nonzero(total)))
    if k == 0:
        return ()
    top = np.argpartition(-total, k - 1)[:k]
    account = top[np.lexsort((top, -total[top]))]
    wanted = [int(a) for a in account]
    ids: dict[int, str] = {}
    for part in runner.call("account_ids_of", [(wanted,)] * runner.n_shards):
        ids.update(part)
    return tuple((ids[a], int(total[a]) * CASH_UNIT) for a in wanted)


def _deleverageable(kind: int) -> bool:
    """ADL trades futures and perpetuals (options and spot have no ADL queue)."""
    return kind not in (InstrumentKind.OPTION, InstrumentKind.SPOT)


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


def forward_stress(
    venue: StressVenue,
    model: MarginModel,
    shock: Shock,
    *,
    policy: Policy,
    insurance_fund_usd: float,
    n_shards: int = 1,
) -> CascadeResult:
    """A forward stress: the shock's cascade without price impact, on fresh shards."""
    runner = LocalShards.of(venue, model, n_shards=n_shards)
    return run_cascade(runner, venue, [shock], policy=policy, insurance_fund_usd=insurance_fund_usd)


# -- reverse stress ---------------------------------------------------------------------------


@dataclass(frozen=True, slots=True, kw_only=True)
class ReverseStress:
    """The smallest scale of `direction` that breaks the target, with the forward stresses just
    below (`holds`) and at (`breaks`) it."""

    direction: str
    target: str
    threshold_usd: float
    search: ReverseResult
    holds: CascadeResult
    breaks: CascadeResult


def reverse_stress(
    venue: StressVenue,
    model: MarginModel,
    direction: Shock,
    *,
    policy: Policy,
    insurance_fund_usd: float,
    target: str = "fund",
    threshold_usd: float = 0.0,
    impact: SquareRootImpact = NO_IMPACT,
    tolerance: float = 1e-3,
    max_scale: float = 16.0,
    n_shards: int = 1,
) -> ReverseStress:
    """Smallest k such that the forward stress (a cascade, with `impact`) of `direction.scaled(k)`
    exhausts the insurance fund (target "fund": deficits ≥ fund + fees collected) or leaves bad
    debt above `threshold_usd` (target "bad_debt"); core.stress.reverse does the bracketing."""
    if target not in ("fund", "bad_debt"):
        raise InputError("target", "must be 'fund' or 'bad_debt'")

    def forward(scale: float) -> CascadeResult:
        runner = LocalShards.of(venue, model, n_shards=n_shards)
        shock = direction.scaled(scale)
        return run_cascade(
            runner, venue, [shock], policy=policy, insurance_fund_usd=insurance_fund_usd, impact=impact
        )

    def outcome(scale: float) -> float:
        result = forward(scale)
        if target == "fund":
            fees = sum(r.fees_usd for r in result.rounds)
            return result.deficit_usd - (insurance_fund_usd + fees)
        return result.bad_debt_usd - threshold_usd

    search = smallest_breaking_scale(outcome, tolerance=tolerance, max_scale=max_scale)
    return ReverseStress(
        direction=direction.label,
        target=target,
        threshold_usd=threshold_usd,
        search=search,
        holds=forward(search.lower),
        breaks=forward(search.upper),
    )


def compare_policies(
    venue: StressVenue,
    model: MarginModel,
    path: Sequence[Shock],
    *,
    insurance_fund_usd: float,
    impact: SquareRootImpact = NO_IMPACT,
    candidates: Sequence[Policy] | None = None,
    n_shards: int = 1,
) -> list[CascadeResult]:
    """The same shock path under each liquidation policy (default: every one, `policies()`)."""
    return [
        run_cascade(
            LocalShards.of(venue, model, n_shards=n_shards),
            venue,
            path,
            policy=p,
            insurance_fund_usd=insurance_fund_usd,
            impact=impact,
        )
        for p in (candidates if candidates is not None else policies())
    ]


def policy_named(name: str, *, fee_rate: float = 0.005, exit_coverage: float = 1.25) -> Policy:
    """'full/queue', 'partial/pro_rata', 'full/no-adl', ... (see `policies`)."""
    for p in policies(fee_rate=fee_rate, exit_coverage=exit_coverage):
        if p.name == name:
            return p
    names = ", ".join(p.name for p in policies())
    raise InputError("policy", f"unknown policy {name!r}; choose one of {names}")


def split_path(shock: Shock, steps: int) -> list[Shock]:
    """A shock reached in `steps` equal steps in log price (and linearly in vol, funding): the hour
    of a crash as a price path."""
    if steps < 1:
        raise InputError("steps", "must be >= 1")
    if steps == 1:
        return [shock]
    return [
        dataclasses.replace(shock.scaled((k + 1) / steps), label=f"{shock.label} step {k + 1}/{steps}")
        for k in range(steps)
    ]

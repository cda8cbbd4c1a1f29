"""Stress runs the stress page starts: a shock evaluated by the venue's model, or a cascade walked
through a copy of the exact ledger.

Until the venue-wide stress engine (issue 15: scenario sets on the one scenario pass, price impact,
reverse stress) is on main, the page runs what the engine already has:

- **shock** (hypothetical, or historical: the joint close-to-close move of a window of the shared
  daily history): every underlying's complex moved by its factor (`core.liquidation.model_prices.
  moved_market`, applied per underlying; a collateral asset that is no underlying, e.g. USDC in its
  2023 depeg, repriced alone), then ONE evaluation of the venue's model on the whole moved book:
  accounts under maintenance and under zero, the shortfall Σ max(0, −equity), and what the
  insurance fund would have left, before any liquidation and without price impact;
- **cascade**: the same move walked in `steps` geometric steps through a copy of the venue's ledger
  (`engine.simulation`): each step one price update and the risk cycle (margin calls, liquidation
  fills, the loss waterfall, ADL), so the accounts liquidated, the insurance-fund path and the bad
  debt are the ledger's own. No price impact of the liquidations (the stress engine's cascade).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossmargin.core.book import Book
from crossmargin.core.ledger.events import PriceUpdate
from crossmargin.core.ledger.money import to_float
from crossmargin.core.ledger.postings import BAD_DEBT, INSURANCE
from crossmargin.core.ledger.state import LedgerConfig, LedgerState
from crossmargin.core.liquidation.model_prices import moved_market
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.dashboard.source import VenueView
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.simulation import Simulation
from crossmargin.errors import InputError

# Historical windows (first close, last close) of the shared daily history: their joint move.
HISTORICAL_WINDOWS: Mapping[str, tuple[str, str, str]] = {
    "covid-2020-03": ("2020-03-11", "2020-03-12", "COVID crash, 12 March 2020"),
    "china-2021-05": ("2021-05-18", "2021-05-19", "China mining ban sell-off, 19 May 2021"),
    "luna-2022-05": ("2022-05-08", "2022-05-12", "LUNA/UST collapse, 8–12 May 2022"),
    "ftx-2022-11": ("2022-11-07", "2022-11-09", "FTX collapse, 7–9 November 2022"),
    "usdc-2023-03": ("2023-03-09", "2023-03-11", "USDC depeg (SVB), 9–11 March 2023"),
}
MAX_CASCADE_STEPS = 50


@dataclass(frozen=True, slots=True)
class Shock:
    """Price factors per symbol (underlying or collateral asset), e.g. {"BTC": 0.8} for −20 %."""

    label: str
    factors: Mapping[str, float]


def uniform_shock(view: VenueView, move: float) -> Shock:
    """Every underlying of the venue moved by `move` (fraction, e.g. -0.2)."""
    if not (math.isfinite(move) and -0.99 <= move <= 10.0):
        raise InputError("move", f"must be a fraction in [-0.99, 10], got {move!r}")
    underlyings = view.engine.market.underlyings
    return Shock(label=f"all underlyings {move:+.0%}", factors=dict.fromkeys(underlyings, 1.0 + move))


def historical_shock(history: PriceHistorySource | None, window: str, symbols: tuple[str, ...]) -> Shock:
    """The window's close-to-close factor of every symbol the history has (others unmoved)."""
    if window not in HISTORICAL_WINDOWS:
        raise InputError(
            "window", f"unknown window {window!r}; choose one of {', '.join(HISTORICAL_WINDOWS)}"
        )
    if history is None:
        raise InputError(
            "window", "historical stresses need the shared daily price history (CROSSMARGIN_DATA)"
        )
    first, last, label = HISTORICAL_WINDOWS[window]
    daily = history.price_history()
    rows = [int(np.searchsorted(daily.days, np.datetime64(day, "D"))) for day in (first, last)]
    factors: dict[str, float] = {}
    for symbol in symbols:
        if daily.has(symbol):
            start, end = (float(daily.close_usd[r, daily.column(symbol)]) for r in rows)
            if math.isfinite(start) and math.isfinite(end):
                factors[symbol] = end / start
    return Shock(label=label, factors=factors)


def shocked(book: Book, market: MarketState, factors: Mapping[str, float]) -> tuple[Book, MarketState]:
    """The book and market with each named symbol's complex moved by its factor (module docstring)."""
    underlyings = market.underlyings
    for symbol, factor in factors.items():
        if symbol in underlyings:
            base = revalue(book.instruments, market)
            book, market = moved_market(
                book, market, base, underlying=underlyings.index(symbol), factor=factor
            )
        elif symbol in book.assets.index:
            prices = book.assets.price_usd.copy()
            prices[book.assets.index[symbol]] *= factor
            book = book.with_asset_prices(prices)
        else:
            raise InputError(f"shock[{symbol}]", "not an underlying or collateral asset of the venue")
    return book, market


def run_shock(view: VenueView, shock: Shock) -> dict[str, Any]:
    """One evaluation of the venue's model at the shocked prices (module docstring)."""
    engine = view.engine
    book, market = shocked(engine.book, engine.market, shock.factors)
    after = engine.model.evaluate(book, market)
    before = engine.result
    shortfall = np.maximum(-after.equity_usd, 0.0)
    total_shortfall = float(shortfall.sum())
    under = np.flatnonzero(after.below_maintenance)
    return {
        "kind": "shock",
        "label": shock.label,
        "factors": {s: f - 1.0 for s, f in shock.factors.items()},
        "accounts": int(after.equity_usd.size),
        "under_maintenance": int(under.size),
        "under_zero": int(np.count_nonzero(after.equity_usd < 0.0)),
        "shortfall_usd": total_shortfall,
        "insurance_fund_usd": view.insurance_fund_usd,
        "insurance_fund_left_usd": max(view.insurance_fund_usd - total_shortfall, 0.0),
        "uncovered_usd": max(total_shortfall - view.insurance_fund_usd, 0.0),
        "rows": [
            {
                "account_id": engine.book.account_ids[r],
                "equity_before_usd": float(before.equity_usd[r]),
                "equity_after_usd": float(after.equity_usd[r]),
                "maintenance_margin_after_usd": float(after.maintenance_margin_usd[r]),
                "shortfall_usd": float(shortfall[r]),
            }
            for r in under.tolist()
        ],
    }


def price_update(
    state: LedgerState, config: LedgerConfig, index_prices: Mapping[str, float], *, as_of_ns: int
) -> PriceUpdate:
    """A ledger price update: the index prices, and every delta-one mark on a moved underlying
    moved by the same factor (the basis kept), as an oracle publishing both would."""
    table = config.instruments
    marks: dict[str, float] = {}
    for symbol, price in index_prices.items():
        if symbol not in state.prices:
            raise InputError(f"prices[{symbol}]", "not an underlying or collateral asset of the venue")
        if not (isinstance(price, int | float) and 0.0 < price < math.inf):
            raise InputError(f"prices[{symbol}]", f"must be a positive finite USD price, got {price!r}")
        factor = float(price) / state.prices[symbol]
        for instrument, mark in state.marks.items():
            i = table.position(instrument)
            if table.underlyings[int(table.underlying_index[i])] == symbol:
                marks[instrument] = mark * factor
    return PriceUpdate(index_prices=dict(index_prices), mark_prices=marks, as_of_ns=as_of_ns)


def ledger_usd(state: LedgerState, config: LedgerConfig, account: str) -> float:
    """An account's balances at the state's prices, USD (display: exact units converted once)."""
    return sum(
        to_float(units, config.decimals[asset]) * state.prices[asset]
        for (holder, asset), units in state.balances.items()
        if holder == account
    )


def run_cascade(view: VenueView, shock: Shock, *, steps: int) -> dict[str, Any]:
    """The shock walked in `steps` geometric steps through a copy of the venue's ledger."""
    if view.ledger is None:
        raise InputError("mode", "this venue does not expose its ledger: run a shock instead")
    if not 1 <= steps <= MAX_CASCADE_STEPS:
        raise InputError("steps", f"must be 1..{MAX_CASCADE_STEPS}, got {steps!r}")
    start, config = view.ledger()
    sim = Simulation(config=config, state=start)  # a copy: states are immutable values
    start_prices = {s: start.prices[s] for s in shock.factors}
    path = []
    liquidated: set[str] = set()
    for k in range(1, steps + 1):
        prices = {s: p * shock.factors[s] ** (k / steps) for s, p in start_prices.items()}
        records_before = len(sim.records)
        sim.step(price_update(sim.state, config, prices, as_of_ns=sim.state.time_ns))
        fills = [r for r in sim.records[records_before:] if r.kind == "liquidation_fill"]
        liquidated.update(r.account for r in fills)
        path.append(
            {
                "step": k,
                "move": {s: (prices[s] / start_prices[s]) - 1.0 for s in prices},
                "liquidation_fills": len(fills),
                "accounts_liquidated": len(liquidated),
                "insurance_fund_usd": ledger_usd(sim.state, config, INSURANCE),
                "bad_debt_usd": -ledger_usd(sim.state, config, BAD_DEBT),
            }
        )
    final = sim.state.status
    return {
        "kind": "cascade",
        "label": shock.label,
        "factors": {s: f - 1.0 for s, f in shock.factors.items()},
        "steps": path,
        "liquidated": sorted(liquidated),
        "final_status": {t: final[t].name.lower() for t in sim.state.traders},
        "rejected": len(sim.rejected),
    }

"""Shocks: the scenario a stress applies, from a scenario set, a hypothetical move or a
historical window, and split into a path of steps (`Shock`)."""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.scenarios import ScenarioSet
from crossmargin.core.stress.historical import WindowMove
from crossmargin.errors import InputError

if TYPE_CHECKING:  # an annotation only: prepared imports this module
    from crossmargin.engine.stress.prepared import StressVenue

FloatArray = npt.NDArray[np.float64]


CASH_SYMBOL = "USD"
STABLECOINS = frozenset({"USDC", "USDT", "DAI", "BUSD", "FDUSD", "USDE"})  # no data: par, not the proxy


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
        if not math.isfinite(points):
            raise InputError(f"shock.vol_shift[{symbol}]", f"must be finite (vol points), got {points!r}")
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

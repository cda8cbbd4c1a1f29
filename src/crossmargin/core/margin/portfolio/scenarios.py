"""The scenario sets of a methodology for one book: risk factors, per-underlying grids or joint
correlated moves, the stablecoin-depeg rows, and the numeraire's price factor per scenario."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin.portfolio.parameters import AddOns, JointSpec, PortfolioParams
from crossmargin.core.pricing import InstrumentValuation
from crossmargin.core.scenarios import ScenarioSet, joint_scenarios, underlying_grid
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]


def risk_factors(book: Book) -> tuple[str, ...]:
    """Underlyings, then collateral assets that are not underlyings (stablecoins, fiat)."""
    underlyings = book.instruments.underlyings
    return underlyings + tuple(a for a in book.assets.symbols if a not in underlyings)


def build_scenarios(book: Book, valuation: InstrumentValuation, params: PortfolioParams) -> ScenarioSet:
    """The methodology's scenario set for this book's instruments and factors."""
    factors = risk_factors(book)
    sets: list[ScenarioSet] = []
    if params.combine == "sum":
        for underlying in book.instruments.underlyings:  # concat numbers the groups
            spec = params.grids.get(underlying, params.default_grid)
            if spec is None:
                raise InputError("portfolio.grids", f"no grid for underlying {underlying!r} and no default")
            sets.append(
                underlying_grid(
                    book.instruments,
                    valuation,
                    factors=factors,
                    underlying=underlying,
                    spec=spec,
                    group=0,
                )
            )
    else:
        assert params.joint is not None
        sets.append(_joint_set(book, valuation, params.joint, factors))
    result = sets[0]
    for more in sets[1:]:
        result = result.concat(more)
    return result


def _joint_set(
    book: Book, valuation: InstrumentValuation, joint: JointSpec, factors: tuple[str, ...]
) -> ScenarioSet:
    known, ranges, corr = joint.for_underlyings(book.instruments.underlyings, factors)
    moves = joint_scenarios(book.instruments, factors=known, ranges=ranges, correlation=corr, group=0)
    years = valuation.years_to_expiry
    option = book.instruments.is_option
    vols = {"": np.zeros(book.instruments.n_instruments)}
    if joint.vol.up > 0.0:
        vols[", vol up"] = np.where(option, joint.vol.shift(years, valuation.implied_vol, direction=1.0), 0.0)
    if joint.vol.down > 0.0:
        vols[", vol down"] = np.where(
            option, joint.vol.shift(years, valuation.implied_vol, direction=-1.0), 0.0
        )
    cols = [factors.index(f) for f in known]
    n_moves = moves.n_scenarios
    price = np.ones((n_moves * len(vols), len(factors)))
    price[:, cols] = np.tile(moves.price_factor, (len(vols), 1))
    vol_rows = np.repeat(np.array(list(vols.values())), n_moves, axis=0)
    labels = [f"{label}{name}" for name in vols for label in moves.labels]
    weights = [1.0] * len(labels)
    caps = [np.inf] * len(labels)
    if joint.extreme_moves:
        extreme = np.ones((len(joint.extreme_moves), len(factors)))
        for row, move in enumerate(joint.extreme_moves):
            weight = joint.extreme_cover if joint.extreme_weights is None else joint.extreme_weights[row]
            extreme[row, cols] = 1.0 + move
            labels.append(f"joint all {move:+.0%}, extreme ({weight:.3g} of loss)")
            weights.append(weight)
            caps.append(np.inf if joint.extreme_delta_one_cap is None else joint.extreme_delta_one_cap)
        price = np.vstack([price, extreme])
        up = vols.get(", vol up", vols[""])
        vol_rows = np.vstack([vol_rows, np.repeat(up[None, :], len(joint.extreme_moves), axis=0)])
    return ScenarioSet(
        factors=factors,
        price_factor=price,
        vol_shift=vol_rows,
        weight=np.array(weights),
        group=np.zeros(len(labels), dtype=np.int64),
        labels=tuple(labels),
        delta_one_cap=np.array(caps),
    )


def depeg_scenarios(book: Book, addons: AddOns, factors: tuple[str, ...]) -> ScenarioSet | None:
    """One scenario per stablecoin held as a factor: that coin alone falls by depeg_move."""
    coins = [c for c in addons.stablecoins if c in factors]
    if addons.depeg_move <= 0.0 or not coins:
        return None
    price = np.ones((len(coins), len(factors)))
    for row, coin in enumerate(coins):
        price[row, factors.index(coin)] = 1.0 - addons.depeg_move
    return ScenarioSet(
        factors=factors,
        price_factor=price,
        vol_shift=np.zeros((len(coins), book.instruments.n_instruments)),
        weight=np.ones(len(coins)),
        group=np.zeros(len(coins), dtype=np.int64),
        labels=tuple(f"{c} depeg {-addons.depeg_move:+.1%}" for c in coins),
    )


def numeraire_factor(scenarios: ScenarioSet, numeraire: str | None) -> FloatArray:
    """The numeraire coin's price factor f per scenario (ones for USD), its move capped like every
    delta-one move of the row.

    In a coin numeraire an item worth V0 USD today and V0 + dV in a scenario changes by
    (V0 + dV)/(P·f) - V0/P coins = (dV - V0·(f - 1)) / f in coins, i.e. that many USD at today's
    coin price P: a balance of the coin itself carries no risk (Deribit S:PM margins each
    currency in that currency)."""
    if numeraire is None:
        return np.ones(scenarios.n_scenarios)
    column = scenarios.factor_index(numeraire)
    if column < 0:
        raise InputError("portfolio.numeraire", f"{numeraire!r} is not a risk factor of this book")
    cap = scenarios.caps
    factor: FloatArray = 1.0 + np.clip(scenarios.price_factor[:, column] - 1.0, -cap, cap)
    return factor

"""Scenario sets and the scenario revaluation of every instrument and collateral asset.

A ScenarioSet is data: S rows, each a multiplicative shock to the price of every risk factor
(underlyings and collateral assets, by symbol: BTC, ETH, USDT, ...) and an additive implied-vol
shock per option. A shocked price is today's x factor; every price of an underlying's complex
(index, futures marks, option forwards) moves by the same factor. Factors the set does not name
(e.g. USD) do not move.

Each scenario has a `weight` (the fraction of its loss that counts: 1 for regular moves, the cover
fraction for extreme moves, as SPAN's 35 %) and a `group`: the requirement is the sum over groups of
the worst weighted loss within the group, so per-underlying grids summed (Deribit PM sums its
per-currency results) and joint scenarios (one group) are the same machinery.

Revaluation produces, per instrument and scenario, the change of the two per-contract value
coefficients of `pricing.InstrumentValuation` (unit value and entry coefficient), so a position's
scenario P&L is q·(dA[i,s] + entry_term·dB[i,s]) and an account's is a pair of sparse products;
collateral P&L is value_usd(A x K) @ (factor - 1)(K x S) because haircut and liability values are
linear in price.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.assets import AssetTable
from crossmargin.core.checks import check_finite, check_positive
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, black76
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MIN_SHOCKED_VOL = 0.01  # a vol-down shock never prices an option below 1 % vol


@dataclass(frozen=True, slots=True)
class ScenarioSet:
    """S scenarios over F risk factors and I instruments.

    price_factor (S, F) > 0; vol_shift (S, I) additive, in vol units (0.10 = 10 vol points);
    weight (S,) in (0, 1]; group (S,) int >= 0; labels (S,).
    """

    factors: tuple[str, ...]
    price_factor: FloatArray
    vol_shift: FloatArray
    weight: FloatArray
    group: IntArray
    labels: tuple[str, ...]

    def __post_init__(self) -> None:
        s = len(self.labels)
        if self.price_factor.shape != (s, len(self.factors)):
            raise InputError(
                "scenarios.price_factor", f"shape {self.price_factor.shape} != ({s}, {len(self.factors)})"
            )
        if self.vol_shift.ndim != 2 or self.vol_shift.shape[0] != s:
            raise InputError("scenarios.vol_shift", f"shape {self.vol_shift.shape} does not have {s} rows")
        check_positive(self.price_factor, "scenarios.price_factor")
        check_finite(self.vol_shift, "scenarios.vol_shift")
        check_positive(self.weight, "scenarios.weight")
        if np.any(self.weight > 1.0):
            raise InputError("scenarios.weight", "must be <= 1 (a cover fraction)")
        if self.group.shape != (s,) or (s and self.group.min() < 0):
            raise InputError("scenarios.group", "must be (S,) non-negative integers")

    @property
    def n_scenarios(self) -> int:
        return len(self.labels)

    @property
    def n_groups(self) -> int:
        return int(self.group.max()) + 1 if self.group.size else 0

    def factor_index(self, symbol: str) -> int:
        """Column of `symbol`, or -1 if the set does not move it."""
        return self.factors.index(symbol) if symbol in self.factors else -1

    def concat(self, other: ScenarioSet) -> ScenarioSet:
        """Rows of both sets (same factors and instruments); other's groups follow ours."""
        if other.factors != self.factors:
            raise InputError("scenarios.factors", "cannot concatenate sets over different factors")
        return ScenarioSet(
            factors=self.factors,
            price_factor=np.vstack([self.price_factor, other.price_factor]),
            vol_shift=np.vstack([self.vol_shift, other.vol_shift]),
            weight=np.concatenate([self.weight, other.weight]),
            group=np.concatenate([self.group, other.group + (self.n_groups if other.group.size else 0)]),
            labels=self.labels + other.labels,
        )

    def with_zero_scenario(self) -> ScenarioSet:
        """The set plus the unshocked scenario, in group 0."""
        zero = ScenarioSet(
            factors=self.factors,
            price_factor=np.ones((1, len(self.factors))),
            vol_shift=np.zeros((1, self.vol_shift.shape[1])),
            weight=np.ones(1),
            group=np.zeros(1, dtype=np.int64),
            labels=("zero",),
        )
        merged = self.concat(zero)
        group = merged.group.copy()
        group[-1] = 0
        return ScenarioSet(
            factors=merged.factors,
            price_factor=merged.price_factor,
            vol_shift=merged.vol_shift,
            weight=merged.weight,
            group=group,
            labels=merged.labels,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VolShock:
    """Implied-vol shock with a term structure: shorter expiries move more.

    shift(T) = ± clip(base · (reference_days / DTE)^power, low, high) for each option, in vol units
    (Deribit PM scales its vol shock by (30/DTE)^0.3; SPAN uses one vol range per product).
    """

    up: float = 0.0
    down: float = 0.0
    reference_days: float = 30.0
    power: float = 0.0
    min_days: float = 1.0
    cap_multiple: float = 4.0

    def shift(self, years_to_expiry: FloatArray, *, direction: float) -> FloatArray:
        days = np.maximum(
            np.where(np.isfinite(years_to_expiry), years_to_expiry * 365.0, np.inf), self.min_days
        )
        scale = np.minimum((self.reference_days / days) ** self.power, self.cap_multiple)
        base = self.up if direction > 0 else self.down
        result: FloatArray = direction * base * scale
        return result


def underlying_grid(
    instruments: InstrumentTable,
    market: MarketState,
    *,
    factors: Sequence[str],
    underlying: str,
    price_range: float,
    price_steps: int,
    vol: VolShock,
    group: int,
    extreme_multiple: float = 0.0,
    extreme_cover: float = 1.0,
    move_with: Mapping[str, float] | None = None,
) -> ScenarioSet:
    """A price x vol grid on one underlying (Deribit PM / SPAN style).

    Price moves: price_steps points evenly over [-range, +range] (include 0 when odd), each with
    vol up, unchanged and down (vol shocks apply only to options on this underlying). Extreme moves
    (±extreme_multiple x range, vol unchanged) count at `extreme_cover`. `move_with` lets other
    factors move with this one (e.g. {"BTC-collateral": 1.0}); by default only the factor named
    `underlying` moves.
    """
    if price_steps < 1:
        raise InputError("scenarios.price_steps", "must be >= 1")
    if not 0.0 < price_range < 1.0:
        raise InputError("scenarios.price_range", f"must lie in (0, 1), got {price_range!r}")
    factors = tuple(factors)
    if underlying not in factors:
        raise InputError("scenarios.underlying", f"{underlying!r} is not a risk factor")
    moves = np.linspace(-price_range, price_range, price_steps) if price_steps > 1 else np.zeros(1)
    years = market.years_to_expiry(instruments)
    on_underlying = instruments.is_option & (
        np.asarray(instruments.underlyings, dtype=object)[instruments.underlying_index] == underlying
    )
    vol_rows = [np.zeros(instruments.n_instruments)]
    vol_names = ["vol same"]
    if vol.up > 0.0:
        vol_rows.append(np.where(on_underlying, vol.shift(years, direction=1.0), 0.0))
        vol_names.append("vol up")
    if vol.down > 0.0:
        vol_rows.append(np.where(on_underlying, vol.shift(years, direction=-1.0), 0.0))
        vol_names.append("vol down")
    linked = {underlying: 1.0} | dict(move_with or {})
    columns = np.array([factors.index(f) for f in linked])
    betas = np.array(list(linked.values()))
    rows_factor: list[FloatArray] = []
    rows_vol: list[FloatArray] = []
    weights: list[float] = []
    labels: list[str] = []
    for move in moves:  # a handful of grid points: scenario construction, not a hot path
        for vol_row, vol_name in zip(vol_rows, vol_names, strict=True):
            factor = np.ones(len(factors))
            factor[columns] = 1.0 + betas * move
            rows_factor.append(factor)
            rows_vol.append(vol_row)
            weights.append(1.0)
            labels.append(f"{underlying} {move:+.1%}, {vol_name}")
    if extreme_multiple > 0.0:
        for sign in (-1.0, 1.0):
            move = sign * extreme_multiple * price_range
            if move <= -1.0:
                raise InputError("scenarios.extreme_multiple", "an extreme move of -100 % or worse")
            factor = np.ones(len(factors))
            factor[columns] = 1.0 + betas * move
            rows_factor.append(factor)
            rows_vol.append(vol_rows[0])
            weights.append(extreme_cover)
            labels.append(f"{underlying} {move:+.1%} extreme (cover {extreme_cover:.0%})")
    return ScenarioSet(
        factors=factors,
        price_factor=np.array(rows_factor),
        vol_shift=np.array(rows_vol),
        weight=np.array(weights),
        group=np.full(len(labels), group, dtype=np.int64),
        labels=tuple(labels),
    )


def correlated_moves(
    *,
    factors: Sequence[str],
    ranges: Mapping[str, float],
    correlation: FloatArray,
) -> tuple[FloatArray, tuple[str, ...]]:
    """Joint price moves on the boundary of the correlation ellipsoid {x : xᵀ C⁻¹ x ≤ 1} (x in units
    of each factor's range): for each direction d, the support point x = C d / √(dᵀ C d) — the
    worst joint move for a linear book with exposures along d, whose loss is then √(dᵀ C d).

    Directions: ±e_i (factor i moves its full range, the others their conditional mean ρ·range)
    and, for every pair, ±(e_i + e_j) and ±(e_i - e_j). For ρ = 0.8 the parting move is
    ±√((1-ρ)/2) = ±32 % of each range in opposite directions: what a BTC-collateral, ETH-short book
    must survive. Returns (returns (n, F), labels).
    """
    names = tuple(factors)
    m = len(names)
    corr = np.asarray(correlation, dtype=np.float64)
    if corr.shape != (m, m) or not np.allclose(corr, corr.T) or not np.allclose(np.diag(corr), 1.0):
        raise InputError("scenarios.correlation", f"must be a symmetric ({m}x{m}) matrix with unit diagonal")
    try:
        np.linalg.cholesky(corr)
    except np.linalg.LinAlgError:
        raise InputError("scenarios.correlation", "must be positive definite") from None
    missing = [f for f in names if f not in ranges]
    if missing:
        raise InputError("scenarios.ranges", f"no price range for factor {missing[0]!r}")
    scale = np.array([ranges[f] for f in names])
    eye = np.eye(m)
    directions: list[FloatArray] = []
    labels: list[str] = []
    for i in range(m):
        for sign, text in ((1.0, "+"), (-1.0, "-")):
            directions.append(sign * eye[i])
            labels.append(f"joint {text}{names[i]}")
    for i in range(m):
        for j in range(i + 1, m):
            for si, sj in ((1.0, 1.0), (-1.0, -1.0), (1.0, -1.0), (-1.0, 1.0)):
                directions.append(si * eye[i] + sj * eye[j])
                labels.append(f"joint {'+' if si > 0 else '-'}{names[i]} {'+' if sj > 0 else '-'}{names[j]}")
    d = np.array(directions)
    support = (d @ corr) / np.sqrt(np.einsum("ij,jk,ik->i", d, corr, d))[:, None]
    return support * scale, tuple(labels)


def joint_scenarios(
    instruments: InstrumentTable,
    *,
    factors: Sequence[str],
    ranges: Mapping[str, float],
    correlation: FloatArray,
    group: int,
) -> ScenarioSet:
    """Correlated joint moves (see `correlated_moves`) as a ScenarioSet in one group; vol unchanged."""
    moves, labels = correlated_moves(factors=factors, ranges=ranges, correlation=correlation)
    if np.any(moves <= -1.0):
        raise InputError("scenarios.ranges", "a joint move of -100 % or worse")
    return ScenarioSet(
        factors=tuple(factors),
        price_factor=1.0 + moves,
        vol_shift=np.zeros((len(labels), instruments.n_instruments)),
        weight=np.ones(len(labels)),
        group=np.full(len(labels), group, dtype=np.int64),
        labels=labels,
    )


@dataclass(frozen=True, slots=True)
class ScenarioRevaluation:
    """Changes from today, per contract: d_unit_value_usd and d_entry_coefficient_usd (I, S);
    collateral price change d_factor (K, S) (factor - 1 for each asset; 0 if it does not move)."""

    d_unit_value_usd: FloatArray
    d_entry_coefficient_usd: FloatArray
    d_asset_factor: FloatArray
    instrument_factor: FloatArray  # (I, S) price factor applied to each instrument's underlying


def revalue_scenarios(
    instruments: InstrumentTable,
    assets: AssetTable,
    market: MarketState,
    valuation: InstrumentValuation,
    scenarios: ScenarioSet,
) -> ScenarioRevaluation:
    """Revalue each instrument once per scenario (options fully repriced with Black-76, both
    settlement styles); P&L is model(shocked) - model(today) so a mark off the model never shows up
    as a scenario P&L."""
    if scenarios.vol_shift.shape[1] != instruments.n_instruments:
        raise InputError("scenarios.vol_shift", "columns do not match the instrument table")
    s_count = scenarios.n_scenarios
    underlying_col = np.array([scenarios.factor_index(u) for u in instruments.underlyings], dtype=np.int64)
    padded = np.hstack([scenarios.price_factor, np.ones((s_count, 1))])  # column -1 -> no move
    factor = padded[:, underlying_col[instruments.underlying_index]].T  # (I, S)
    move = factor - 1.0

    cs = instruments.contract_size[:, None]
    inverse = instruments.is_inverse
    spot = valuation.spot_usd[:, None]
    mark = np.where(np.isnan(valuation.mark_price), 1.0, valuation.mark_price)[:, None]
    d_unit = np.zeros((instruments.n_instruments, s_count))
    d_coef = np.zeros_like(d_unit)
    linear_d1 = (~instruments.is_option & ~inverse)[:, None]
    d_unit = np.where(linear_d1, cs * mark * move, d_unit)
    inverse_d1 = (~instruments.is_option & inverse)[:, None]
    d_coef = np.where(inverse_d1, cs * spot * move, d_coef)

    options = np.flatnonzero(instruments.is_option)
    if options.size:
        f0 = valuation.forward_usd[options][:, None]
        k = instruments.strike[options][:, None]
        t = valuation.years_to_expiry[options][:, None]
        vol0 = valuation.implied_vol[options][:, None]
        sign = instruments.option_sign[options].astype(np.float64)[:, None]
        fac = factor[options]
        shocked_vol = np.maximum(vol0 + scenarios.vol_shift[:, options].T, MIN_SHOCKED_VOL)
        base = black76(forward=f0, strike=k, years=t, vol=vol0, rate=market.rate, sign=sign).value
        shocked = black76(
            forward=f0 * fac, strike=k, years=t, vol=shocked_vol, rate=market.rate, sign=sign
        ).value
        # Linear: cs·B. Inverse: cs·(B/F)·S, and F/S is fixed, so cs·B·S/F in both states.
        to_usd = np.where(inverse[options], valuation.spot_usd[options] / valuation.forward_usd[options], 1.0)
        d_unit[options] = instruments.contract_size[options][:, None] * to_usd[:, None] * (shocked - base)

    asset_col = np.array([scenarios.factor_index(sym) for sym in assets.symbols], dtype=np.int64)
    d_asset = (padded[:, asset_col] - 1.0).T  # (K, S)
    check_finite(d_unit, "scenario d_unit_value_usd")
    return ScenarioRevaluation(
        d_unit_value_usd=np.ascontiguousarray(d_unit),
        d_entry_coefficient_usd=np.ascontiguousarray(d_coef),
        d_asset_factor=np.ascontiguousarray(d_asset),
        instrument_factor=factor,
    )

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
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crossmargin.core.assets import AssetTable
from crossmargin.core.book import Book
from crossmargin.core.checks import check_finite, check_positive, check_range
from crossmargin.core.collateral import value_collateral
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, black76_scenario_values, black76_value, entry_term
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
    offset_usd: FloatArray | None = None
    delta_one_cap: FloatArray | None = None

    def __post_init__(self) -> None:
        s = len(self.labels)
        if self.offset_usd is not None:
            check_finite(self.offset_usd, "scenarios.offset_usd")
            if self.offset_usd.shape != (s,) or np.any(self.offset_usd < 0.0):
                raise InputError("scenarios.offset_usd", "must be (S,) and >= 0 (a dampener)")
        if self.delta_one_cap is not None and (
            self.delta_one_cap.shape != (s,) or np.any(~(self.delta_one_cap > 0.0))
        ):
            raise InputError("scenarios.delta_one_cap", "must be (S,) and > 0")
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
    def caps(self) -> FloatArray:
        """Largest |move| applied to delta-one instruments and collateral per scenario (inf = none).
        Deribit's extended table reprices options at -66 %..+500 % while futures keep their
        ±range boundary P&L (visible in its published pme/simulate example)."""
        return np.full(self.n_scenarios, np.inf) if self.delta_one_cap is None else self.delta_one_cap

    @property
    def offsets(self) -> FloatArray:
        """Dampener per scenario, USD, subtracted from its weighted loss (Deribit extended table)."""
        return np.zeros(self.n_scenarios) if self.offset_usd is None else self.offset_usd

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
            offset_usd=np.concatenate([self.offsets, other.offsets]),
            delta_one_cap=np.concatenate([self.caps, other.caps]),
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
            offset_usd=merged.offset_usd,
            delta_one_cap=merged.delta_one_cap,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class VolShock:
    """Implied-vol shock with a term structure: shorter expiries move more.

    m(DTE) = min((reference_days / max(DTE, min_days))^p, cap_multiple), p = short_power below
    reference_days and long_power from there on (Deribit PM: 0.30 / 0.13; Paradex, Derive alike).
    relative (default): σ_up = max(σ·(1 + up·m), min_vol_up), σ_down = σ·(1 - down·m);
    absolute: σ ± up·m (vol units). Shocked vols never go below MIN_SHOCKED_VOL.
    """

    up: float = 0.0
    down: float = 0.0
    relative: bool = True
    reference_days: float = 30.0
    short_power: float = 0.0
    long_power: float = 0.0
    min_days: float = 1.0
    cap_multiple: float = 1e6
    min_vol_up: float = 0.0

    def __post_init__(self) -> None:
        check_range(self.up, low=0.0, high=10.0, name="vol_shock.up")
        check_range(self.down, low=0.0, high=10.0, name="vol_shock.down")
        check_range(self.min_days, low=1e-6, high=3650.0, name="vol_shock.min_days")

    def multiplier(self, years_to_expiry: FloatArray) -> FloatArray:
        days = np.where(np.isfinite(years_to_expiry), years_to_expiry * 365.0, np.inf)
        days = np.maximum(days, self.min_days)
        power = np.where(days < self.reference_days, self.short_power, self.long_power)
        scale: FloatArray = np.minimum((self.reference_days / days) ** power, self.cap_multiple)
        return scale

    def shift(self, years_to_expiry: FloatArray, vol: FloatArray, *, direction: float) -> FloatArray:
        """Additive shift (vol units) that takes each vol to its shocked value; direction ±1."""
        m = self.multiplier(years_to_expiry)
        base = np.where(np.isfinite(vol), vol, 0.0)
        if direction > 0:
            shocked = base * (1.0 + self.up * m) if self.relative else base + self.up * m
            shocked = np.maximum(shocked, self.min_vol_up)
        else:
            shocked = base * (1.0 - self.down * m) if self.relative else base - self.down * m
        shocked = np.maximum(shocked, MIN_SHOCKED_VOL)
        result: FloatArray = shocked - base
        return result


@dataclass(frozen=True, slots=True, kw_only=True)
class GridSpec:
    """A price x vol grid on one underlying (SPAN / Deribit PM / Paradex style).

    Regular moves: `price_steps` points evenly over [-price_range, +price_range], each with vol
    up, same and down (`edge_vol="up"`: the two end points with vol up only, as Paradex).
    Extreme moves: explicit returns, each with vol `extreme_vol` ("up" or "same"), counted at
    `extreme_weights` (or `extreme_cover` for all), minus `extreme_dampener_usd` per account
    (Deribit's extended table with its dampener; SPAN's ±2 x range at 35 %). With
    `extreme_options_only`, delta-one instruments and collateral keep the ±range boundary move
    in those rows (Deribit's extended table is for far out-of-the-money options).
    """

    price_range: float
    price_steps: int = 9
    vol: VolShock = field(default_factory=VolShock)
    vol_same: bool = True
    edge_vol: str = "all"
    extreme_moves: tuple[float, ...] = ()
    extreme_weights: tuple[float, ...] | None = None
    extreme_cover: float = 1.0
    extreme_vol: str = "same"
    extreme_dampener_usd: float = 0.0
    extreme_options_only: bool = False

    def __post_init__(self) -> None:
        check_range(self.price_range, low=1e-6, high=0.99, name="grid.price_range")
        if self.price_steps < 1:
            raise InputError("grid.price_steps", "must be >= 1")
        if self.edge_vol not in ("all", "up"):
            raise InputError("grid.edge_vol", "must be 'all' or 'up'")
        if self.extreme_vol not in ("up", "same"):
            raise InputError("grid.extreme_vol", "must be 'up' or 'same'")
        if any(m <= -1.0 for m in self.extreme_moves):
            raise InputError("grid.extreme_moves", "a move of -100 % or worse")
        if self.extreme_weights is not None and len(self.extreme_weights) != len(self.extreme_moves):
            raise InputError("grid.extreme_weights", "one weight per extreme move")
        check_range(self.extreme_cover, low=0.0, high=1.0, name="grid.extreme_cover")
        check_range(self.extreme_dampener_usd, low=0.0, high=np.inf, name="grid.extreme_dampener_usd")


def underlying_grid(
    instruments: InstrumentTable,
    valuation: InstrumentValuation,
    *,
    factors: Sequence[str],
    underlying: str,
    spec: GridSpec,
    group: int,
) -> ScenarioSet:
    """The grid of `spec` on one underlying; only that factor moves (collateral in the same asset
    moves with it, since assets and underlyings share factor names)."""
    factors = tuple(factors)
    if underlying not in factors:
        raise InputError("scenarios.underlying", f"{underlying!r} is not a risk factor")
    column = factors.index(underlying)
    moves = (
        np.linspace(-spec.price_range, spec.price_range, spec.price_steps)
        if spec.price_steps > 1
        else np.zeros(1)
    )
    on_underlying = instruments.is_option & (
        np.asarray(instruments.underlyings, dtype=object)[instruments.underlying_index] == underlying
    )
    years = valuation.years_to_expiry
    vol = valuation.implied_vol
    same = np.zeros(instruments.n_instruments)
    up = np.where(on_underlying, spec.vol.shift(years, vol, direction=1.0), 0.0)
    down = np.where(on_underlying, spec.vol.shift(years, vol, direction=-1.0), 0.0)
    vols: dict[str, FloatArray] = {}
    if spec.vol.up > 0.0 or spec.vol.min_vol_up > 0.0:
        vols["vol up"] = up
    if spec.vol_same or not vols:
        vols["vol same"] = same
    if spec.vol.down > 0.0:
        vols["vol down"] = down
    rows_factor: list[FloatArray] = []
    rows_vol: list[FloatArray] = []
    weights: list[float] = []
    offsets: list[float] = []
    caps: list[float] = []
    labels: list[str] = []

    def add(
        move: float, vol_row: FloatArray, vol_name: str, weight: float, offset: float, tag: str, cap: float
    ) -> None:
        factor = np.ones(len(factors))
        factor[column] = 1.0 + move
        rows_factor.append(factor)
        rows_vol.append(vol_row)
        weights.append(weight)
        offsets.append(offset)
        caps.append(cap)
        labels.append(f"{underlying} {move:+.1%}, {vol_name}{tag}")

    edge = np.abs(np.abs(moves) - spec.price_range) < 1e-12
    for n, move in enumerate(moves):  # a handful of grid points: construction, not a hot path
        for vol_name, vol_row in vols.items():
            if spec.edge_vol == "up" and edge[n] and vol_name != "vol up" and "vol up" in vols:
                continue
            add(float(move), vol_row, vol_name, 1.0, 0.0, "", np.inf)
    for n, move in enumerate(spec.extreme_moves):
        weight = spec.extreme_cover if spec.extreme_weights is None else spec.extreme_weights[n]
        vol_name = "vol up" if spec.extreme_vol == "up" else "vol same"
        vol_row = up if spec.extreme_vol == "up" else same
        cap = spec.price_range if spec.extreme_options_only else np.inf
        tag = f", extreme ({weight:.3g} of loss)"
        add(move, vol_row, vol_name, weight, spec.extreme_dampener_usd, tag, cap)
    return ScenarioSet(
        factors=factors,
        price_factor=np.array(rows_factor),
        vol_shift=np.array(rows_vol),
        weight=np.array(weights),
        group=np.full(len(labels), group, dtype=np.int64),
        labels=tuple(labels),
        offset_usd=np.array(offsets),
        delta_one_cap=np.array(caps),
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
    collateral price change d_factor (K, S) (factor - 1 for each asset; 0 if it does not move).

    Delta-one rows have a common factor: each is delta_one_scale_usd[i] x underlying_move[u_i]
    (the capped move of its underlying; the scale is cs·mark for linear, cs·spot for inverse
    contracts, 0 for options), which kernels use to share one row per underlying. None when the
    revaluation was built by hand."""

    d_unit_value_usd: FloatArray
    d_entry_coefficient_usd: FloatArray
    d_asset_factor: FloatArray
    instrument_factor: FloatArray  # (I, S) price factor applied to each instrument's underlying
    underlying_move: FloatArray | None = None  # (U, S)
    delta_one_scale_usd: FloatArray | None = None  # (I,)


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
    column = {f: n for n, f in enumerate(scenarios.factors)}  # -1: a symbol the set does not move
    underlying_col = np.array([column.get(u, -1) for u in instruments.underlyings], dtype=np.int64)
    padded = np.hstack([scenarios.price_factor, np.ones((s_count, 1))])  # column -1 -> no move
    factor = padded[:, underlying_col[instruments.underlying_index]].T  # (I, S)
    cap = scenarios.caps
    # Delta-one instruments and collateral: moves clipped to each scenario's cap.
    underlying_move = np.clip(padded[:, underlying_col] - 1.0, -cap[:, None], cap[:, None]).T  # (U, S)

    inverse = instruments.is_inverse
    mark = np.where(np.isnan(valuation.mark_price), 1.0, valuation.mark_price)
    delta_one = ~instruments.is_option
    scale = np.where(delta_one, instruments.contract_size * np.where(inverse, valuation.spot_usd, mark), 0.0)
    # Each delta-one row moves through exactly one coefficient (linear: unit value; inverse: entry
    # coefficient); the other rows stay zero. Only the moving rows are computed (a dense where
    # over both matrices cost 1.2 ms per tick on 5,000 instruments).
    d_unit = np.zeros((instruments.n_instruments, s_count))
    d_coef = np.zeros((instruments.n_instruments, s_count))
    for rows_of, target in ((delta_one & ~inverse, d_unit), (delta_one & inverse, d_coef)):
        rows = np.flatnonzero(rows_of)
        target[rows] = scale[rows, None] * underlying_move[instruments.underlying_index[rows]]

    options = np.flatnonzero(instruments.is_option)
    if options.size:
        f0 = valuation.forward_usd[options][:, None]
        k = instruments.strike[options][:, None]
        t = valuation.years_to_expiry[options][:, None]
        vol0 = valuation.implied_vol[options][:, None]
        sign = instruments.option_sign[options].astype(np.float64)[:, None]
        fac = factor[options]
        shocked_vol = np.maximum(vol0 + scenarios.vol_shift[:, options].T, MIN_SHOCKED_VOL)
        base = black76_value(forward=f0, strike=k, years=t, vol=vol0, rate=market.rate, sign=sign)
        shocked = black76_scenario_values(
            forward=f0[:, 0],
            factor=fac,
            strike=k[:, 0],
            years=t[:, 0],
            vol=shocked_vol,
            rate=market.rate,
            sign=sign[:, 0],
        )
        # An option whose forward and vol do not move is worth its value: exactly, so an account
        # loses exactly 0 in a scenario that moves nothing it holds. Repriced, it can differ in the
        # last ulp: `black76_value`'s log and exp are numpy's, vectorised (its own AVX-512 code on
        # such CPUs), a compiled kernel's are the C library's (golden explanations named a
        # different zero-loss scenario at numpy 1.26 on an Intel Xeon, family 6 model 167).
        unmoved = (fac == 1.0) & (shocked_vol == vol0)
        shocked = np.where(unmoved, base, shocked)
        # Linear: cs·B. Inverse: cs·(B/F)·S, and F/S is fixed, so cs·B·S/F in both states.
        to_usd = np.where(inverse[options], valuation.spot_usd[options] / valuation.forward_usd[options], 1.0)
        d_unit[options] = instruments.contract_size[options][:, None] * to_usd[:, None] * (shocked - base)

    asset_col = np.array([column.get(sym, -1) for sym in assets.symbols], dtype=np.int64)
    d_asset = np.clip(padded[:, asset_col] - 1.0, -cap[:, None], cap[:, None]).T  # (K, S)
    check_finite(d_unit, "scenario d_unit_value_usd")
    return ScenarioRevaluation(
        d_unit_value_usd=np.ascontiguousarray(d_unit),
        d_entry_coefficient_usd=np.ascontiguousarray(d_coef),
        d_asset_factor=np.ascontiguousarray(d_asset),
        instrument_factor=factor,
        underlying_move=np.ascontiguousarray(underlying_move),
        delta_one_scale_usd=scale,
    )


@dataclass(frozen=True, slots=True)
class ItemScenarioPnL:
    """One account's scenario P&L item by item, for explanations (dense: n_positions x S).

    position_pnl_usd (P, S) = q·(dA[i] + entry_term·dB[i]); collateral_pnl_usd (K, S) =
    haircut value x dF; position_value_usd (P,) and collateral_value_usd (K,) are today's values.
    """

    instrument_index: IntArray
    quantity: FloatArray
    position_value_usd: FloatArray
    position_pnl_usd: FloatArray
    collateral_value_usd: FloatArray
    collateral_pnl_usd: FloatArray


def item_scenario_pnl(
    book: Book,
    account_row: int,
    valuation: InstrumentValuation,
    reval: ScenarioRevaluation,
    asset_price_usd: FloatArray,
) -> ItemScenarioPnL:
    """Every position's and collateral asset's P&L in every scenario, for one account
    (asset_price_usd (K,): today's collateral prices)."""
    start, stop = int(book.positions.indptr[account_row]), int(book.positions.indptr[account_row + 1])
    inst = book.positions.indices[start:stop].astype(np.int64)
    qty = book.positions.data[start:stop]
    term = entry_term(book.entry_price[start:stop], book.instruments.reciprocal_entry[inst])
    position_pnl = qty[:, None] * (
        reval.d_unit_value_usd[inst] + term[:, None] * reval.d_entry_coefficient_usd[inst]
    )
    balances = book.balances[account_row : account_row + 1]
    collateral = value_collateral(balances, book.assets, asset_price_usd).value_usd[0]
    return ItemScenarioPnL(
        instrument_index=inst,
        quantity=qty,
        position_value_usd=qty
        * (valuation.unit_value_usd[inst] + term * valuation.entry_coefficient_usd[inst]),
        position_pnl_usd=position_pnl,
        collateral_value_usd=collateral,
        collateral_pnl_usd=collateral[:, None] * reval.d_asset_factor,
    )

"""Sensitivity ("delta") margin: a SIMM-style charge on net greeks, cheap enough for pre-trade checks.

Structure after ISDA SIMM (Standard Initial Margin Model, methodology v2.x): margin of a risk class
= delta margin + vega margin + curvature margin, each a variance-covariance aggregation of weighted
sensitivities. SIMM has no crypto risk class, so every risk weight and correlation here is this
project's parameter (`SensitivityParams`), not a published ISDA number. The grid model
(`portfolio.PortfolioMargin`) fully revalues every option; this model only linearises (plus a
one-sided gamma term), so it under-charges positions whose loss is mostly convexity in vol or
price — deep out-of-the-money short options far from expiry (tests/core/margin/test_sensitivity.py
measures it).

Sensitivities, per account a and underlying u (shapes (A, U), USD; S_u = index price):

    D_{a,u}    = Σ_p S_u·∂V_p/∂S_u + collateral value of asset u   net delta, USD per 100 % move
    Γ_{a,u}    = Σ_p S_u²·∂²V_p/∂S_u²                              cash gamma, USD per (100 %)²
    ν_{a,u,b}  = Σ_{p in bucket b} σ_p·∂V_p/∂σ_p                   USD per 100 % relative vol move

with the whole complex of an underlying (index, futures marks, option forwards) moving
proportionally (the `pricing` convention). With the valuation split
V_p = q·(unit_i + coef_i·entry_term(E)) the exact USD delta of one position is

    linear delta-one  unit = cs·M,  coef = −cs:        S·∂V/∂S = q·cs·M           = q·delta_usd·S
    inverse delta-one unit = −cs·S/M (constant, S/M fixed), coef = cs·S:
                                                       S·∂V/∂S = q·cs·S/E         = q·coef·(1/E)
    option (either settlement)                         S·∂V/∂S = q·delta_usd·S

For an inverse future, `valuation.delta_usd·S = cs·S/M` is the coin exposure of the USD face only;
the coin PnL cs·(1/E − 1/M) is also worth more USD as S rises, and the exact delta
q·cs·S/E = q·cs·S/M + V_p includes it. So D is two sparse products over the book's CSR pattern,
like the position value itself:

    D = Q @ (a ∘ U) + QE @ (b ∘ U)        a_i = delta_usd·S (0 for inverse delta-one),
                                          b_i = coef_i for inverse delta-one (0 otherwise),
                                          QE = Q with data q·entry_term(E), U = (I × U) one-hot map.

Γ and ν are Q @ (gamma_usd·S² ∘ U) and Q @ (vega_usd·σ ∘ (U × bucket)): sparse (I × U·B) maps,
never a Python loop over accounts or positions. Collateral: an asset whose symbol is an underlying
adds its haircut USD value (`collateral.value_collateral`; negative when borrowed) to D, since that
value is linear in the asset's price; other assets (stablecoins) carry no delta here.

Charges (RW_u = delta risk weight, a fraction of price; ρ = U × U correlation between underlyings):

    WS_{a,u}  = RW_u · D_{a,u}
    K_Δ       = sqrt(WSᵀ ρ WS)                                          per account (einsum)
    VR_{u,b}  = VRW · ν_{u,b}                                           (VRW = relative vol move)
    K_u       = sqrt(Σ_b Σ_c ρ^vega_{bc} VR_b VR_c)    ρ^vega_{bb} = 1, ρ^vega_{b≠c} = bucket correlation
    S^vega_u  = max(min(Σ_b VR_b, K_u), −K_u)
    K_vega    = sqrt(Σ_u K_u² + Σ_{u≠v} ρ_uv S^vega_u S^vega_v)         (SIMM's across-bucket step)
    CVR_u     = max(0, −½ · Γ_u · RW_u²)                                 only short gamma costs
    IM        = K_Δ + K_vega + Σ_u CVR_u,      MM = maintenance_fraction · IM

Collateral delta never raises margin: K_Δ = min(K_Δ(positions + collateral), K_Δ(positions only)).
Why: equity already counts collateral at its haircut value — the haircut is the collateral's own
risk charge, as in the cross model — so collateral delta may only offset position delta (a BTC
balance hedged by a short perpetual needs no delta margin). Hence zero positions need zero margin
(the contract every margin model passes), and the rule is continuous: charging collateral delta
"only for accounts with positions" would jump from 0 to RW·|collateral| when a tiny position opens.
The min of two degree-1-homogeneous functions is homogeneous, so scaling positions and
(single-tier) collateral by k scales K_Δ by k.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.checks import check_all, check_finite, check_instance, check_range
from crossmargin.core.margin.cross import cross_breakdown
from crossmargin.core.margin.options_rule import OptionMarginParams
from crossmargin.core.margin.requirements import balance_values_usd, risk_based_result
from crossmargin.core.margin.result import Breakdown, MarginResult, allocate_requirement
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, entry_term, revalue
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# Eigenvalues of a correlation matrix above -tolerance count as >= 0 (rounding in eigvalsh).
PSD_TOLERANCE = 1e-10
DAYS_PER_YEAR = 365.0  # ACT/365, as market.years_to_expiry


@dataclass(frozen=True, slots=True, kw_only=True)
class SensitivityParams:
    """Risk weights and correlations of the sensitivity model (this project's parameters: SIMM
    has no crypto class).

    delta_risk_weight: per underlying, a fraction of price (BTC 0.16 ≈ a 1-day-ish 99 % move,
        the Deribit PM grid's ±16 %); unlisted underlyings take default_delta_risk_weight.
    vega_risk_weight: relative vol move (SIMM EquityVol uses 0.45).
    vega_bucket_days: expiry bucket edges in days, from 0 up to +inf; bucket b holds options with
        edges[b] <= days < edges[b+1]. vega_bucket_correlation: between two different buckets of
        one underlying.
    correlation: {(u, v): ρ} between underlyings, either order (not both); default_correlation
        for unlisted pairs. The assembled matrix must be positive semi-definite.
    """

    delta_risk_weight: Mapping[str, float] = field(default_factory=lambda: {"BTC": 0.16, "ETH": 0.20})
    default_delta_risk_weight: float = 0.25
    vega_risk_weight: float = 0.45
    vega_bucket_days: tuple[float, ...] = (0.0, 7.0, 30.0, 90.0, 180.0, 365.0, math.inf)
    vega_bucket_correlation: float = 0.5
    curvature: bool = True
    correlation: Mapping[tuple[str, str], float] = field(default_factory=lambda: {("BTC", "ETH"): 0.8})
    default_correlation: float = 0.5
    maintenance_fraction: float = 0.8

    def __post_init__(self) -> None:
        for underlying, weight in self.delta_risk_weight.items():
            check_range(weight, low=0.0, high=10.0, name=f"sensitivity.delta_risk_weight[{underlying}]")
        check_range(
            self.default_delta_risk_weight, low=0.0, high=10.0, name="sensitivity.default_delta_risk_weight"
        )
        check_range(self.vega_risk_weight, low=0.0, high=10.0, name="sensitivity.vega_risk_weight")
        edges = self.vega_bucket_days
        if len(edges) < 2 or edges[0] != 0.0 or edges[-1] != math.inf:
            raise InputError("sensitivity.vega_bucket_days", "must run from 0 to inf with at least two edges")
        if any(not b > a for a, b in pairwise(edges)):
            raise InputError("sensitivity.vega_bucket_days", "edges must be strictly increasing")
        check_range(
            self.vega_bucket_correlation, low=0.0, high=1.0, name="sensitivity.vega_bucket_correlation"
        )
        check_range(self.default_correlation, low=-1.0, high=1.0, name="sensitivity.default_correlation")
        seen: set[frozenset[str]] = set()
        for pair, rho in self.correlation.items():
            if len(pair) != 2 or pair[0] == pair[1]:
                raise InputError("sensitivity.correlation", f"{pair!r} is not a pair of two underlyings")
            key = frozenset(pair)
            if key in seen:
                raise InputError("sensitivity.correlation", f"pair {pair!r} given twice")
            seen.add(key)
            check_range(rho, low=-1.0, high=1.0, name=f"sensitivity.correlation[{pair[0]},{pair[1]}]")
        check_range(self.maintenance_fraction, low=0.0, high=1.0, name="sensitivity.maintenance_fraction")
        named = tuple(
            dict.fromkeys([*self.delta_risk_weight, *(u for pair in self.correlation for u in pair)])
        )
        self.correlation_matrix(named)  # raises unless positive semi-definite

    @property
    def n_vega_buckets(self) -> int:
        return len(self.vega_bucket_days) - 1

    def risk_weights(self, underlyings: Sequence[str]) -> FloatArray:
        """Delta risk weight per underlying, (U,)."""
        return np.array(
            [self.delta_risk_weight.get(u, self.default_delta_risk_weight) for u in underlyings],
            dtype=np.float64,
        )

    def correlation_matrix(self, underlyings: Sequence[str]) -> FloatArray:
        """ρ between these underlyings, (U, U), unit diagonal; InputError unless PSD."""
        names = tuple(underlyings)
        position = {u: n for n, u in enumerate(names)}
        matrix = np.full((len(names), len(names)), self.default_correlation)
        for (u, v), rho in self.correlation.items():
            if u in position and v in position:
                matrix[position[u], position[v]] = matrix[position[v], position[u]] = rho
        np.fill_diagonal(matrix, 1.0)
        if names and np.linalg.eigvalsh(matrix)[0] < -PSD_TOLERANCE:
            raise InputError(
                "sensitivity.correlation",
                f"the correlation matrix over {list(names)} is not positive semi-definite",
            )
        return matrix

    def vega_bucket_matrix(self) -> FloatArray:
        """ρ^vega between expiry buckets, (B, B): 1 on the diagonal, the bucket correlation off it."""
        b = self.n_vega_buckets
        matrix = np.full((b, b), self.vega_bucket_correlation)
        np.fill_diagonal(matrix, 1.0)
        return matrix


@dataclass(frozen=True, slots=True)
class Sensitivities:
    """Per account and underlying, USD (see module docstring); underlyings in book order.

    position_delta_usd, collateral_delta_usd, cash_gamma_usd: (A, U);
    vega_usd: (A, U, B), σ·∂V/∂σ per expiry bucket (P&L of a +100 % relative vol move, linearised).
    """

    underlyings: tuple[str, ...]
    index_price_usd: FloatArray
    position_delta_usd: FloatArray
    collateral_delta_usd: FloatArray
    cash_gamma_usd: FloatArray
    vega_usd: FloatArray

    @property
    def delta_usd(self) -> FloatArray:
        """Positions plus collateral, (A, U)."""
        total: FloatArray = self.position_delta_usd + self.collateral_delta_usd
        return total


@dataclass(frozen=True, slots=True)
class SensitivityCharges:
    """Per account, (A,), USD: the three terms of IM, and the delta charge per underlying (A, U)."""

    delta_usd: FloatArray
    vega_usd: FloatArray
    curvature_usd: FloatArray
    weighted_delta_usd: FloatArray

    @property
    def initial_margin_usd(self) -> FloatArray:
        total: FloatArray = self.delta_usd + self.vega_usd + self.curvature_usd
        return total


def quadratic_form(x: FloatArray, matrix: FloatArray) -> FloatArray:
    """xᵀ M x over the last axis: x (..., N), matrix (N, N) -> (...,).

    Summed as one reduction over each row's own N x N products, so a row's result does not depend
    on how many rows are computed with it (einsum and BLAS pick kernels by shape, which moved the
    last bit between a one-account and a whole-book evaluation; the long-lived engine re-margins
    sub-books and must equal a full recompute bit for bit)."""
    products = x[..., :, None] * matrix * x[..., None, :]
    form: FloatArray = products.reshape(*products.shape[:-2], matrix.size).sum(axis=-1)
    return form


def correlated_norm(weighted: FloatArray, correlation: FloatArray) -> FloatArray:
    """sqrt(WSᵀ ρ WS) over the last axis: weighted (..., N), correlation (N, N) -> (...,).

    SIMM's intra-bucket aggregation K = sqrt(Σ_k WS_k² + Σ_{k≠l} ρ_kl WS_k WS_l) for a PSD ρ;
    rounding below zero is clipped.
    """
    quadratic = quadratic_form(weighted, correlation)
    norm: FloatArray = np.sqrt(np.maximum(quadratic, 0.0))
    return norm


def vega_bucket_index(years_to_expiry: FloatArray, bucket_days: Sequence[float]) -> IntArray:
    """Expiry bucket of each instrument, (I,): edges[b] <= days < edges[b+1]."""
    days = np.where(np.isfinite(years_to_expiry), years_to_expiry * DAYS_PER_YEAR, np.inf)
    edges = np.asarray(bucket_days[1:-1], dtype=np.float64)
    bucket: IntArray = np.searchsorted(edges, days, side="right").astype(np.int64)
    return bucket


def book_sensitivities(
    book: Book, market: MarketState, valuation: InstrumentValuation, params: SensitivityParams
) -> Sensitivities:
    """Net delta, cash gamma and bucketed vega per account and underlying (module docstring)."""
    table = book.instruments
    n_u = len(table.underlyings)
    n_b = params.n_vega_buckets
    spot = valuation.spot_usd
    inverse_d1 = table.reciprocal_entry
    u = table.underlying_index
    bucket = vega_bucket_index(valuation.years_to_expiry, params.vega_bucket_days)
    # Per instrument and contract: delta, gamma and vega, each into its own column of
    # [delta U | gamma U | vega U·B].
    unit_delta = np.where(inverse_d1, 0.0, valuation.delta_usd * spot)
    unit_gamma = valuation.gamma_usd * spot * spot
    unit_vega = np.where(table.is_option, valuation.vega_usd * valuation.implied_vol, 0.0)
    check_finite(unit_delta, "sensitivity unit delta")
    check_finite(unit_gamma, "sensitivity unit gamma")
    check_finite(unit_vega, "sensitivity unit vega")
    positions = book.positions
    inst = positions.indices
    q = positions.data
    n_cols = 2 * n_u + n_u * n_b
    # Each position's three terms into its account's row of one (A, n_cols) sum, positions in
    # book order within each (account, column): the order of the sparse product Q @ map this
    # replaces (scipy's SpGEMM), so the same bits (tests/core/margin/test_sensitivity.py), without
    # importing scipy (~0.3 s of start-up).
    owner = book.position_account
    base = owner * n_cols
    vega_column = 2 * n_u + u * n_b + bucket
    slots = np.concatenate([base + u[inst], base + n_u + u[inst], base + vega_column[inst]])
    terms = np.concatenate([q * unit_delta[inst], q * unit_gamma[inst], q * unit_vega[inst]])
    summed = np.bincount(slots, weights=terms, minlength=book.n_accounts * n_cols).astype(np.float64)
    per_account = summed.reshape(book.n_accounts, n_cols)
    # The inverse contracts' entry term (their delta's other part), summed the same way.
    weighted_entry = q * entry_term(book.entry_price, inverse_d1[inst])
    entry_delta = np.where(inverse_d1, valuation.entry_coefficient_usd, 0.0)[inst]
    entry_slots = owner * n_u + u[inst]
    entry_terms = weighted_entry * entry_delta
    entry_sums = np.bincount(entry_slots, weights=entry_terms, minlength=book.n_accounts * n_u)
    delta = per_account[:, :n_u] + entry_sums.astype(np.float64).reshape(book.n_accounts, n_u)
    gamma = per_account[:, n_u : 2 * n_u]
    vega = per_account[:, 2 * n_u :].reshape(book.n_accounts, n_u, n_b)

    collateral_delta = np.zeros((book.n_accounts, n_u))
    asset_underlying = [
        (k, table.underlyings.index(symbol))
        for k, symbol in enumerate(book.assets.symbols)
        if symbol in table.underlyings
    ]
    if asset_underlying:
        value = balance_values_usd(book, market.asset_prices(book.assets))
        for k, column in asset_underlying:  # a handful of assets
            collateral_delta[:, column] += value[:, k]
    index_price = np.zeros(n_u)
    index_price[u] = spot
    return Sensitivities(
        underlyings=table.underlyings,
        index_price_usd=index_price,
        position_delta_usd=delta,
        collateral_delta_usd=collateral_delta,
        cash_gamma_usd=gamma,
        vega_usd=vega,
    )


def sensitivity_charges(sens: Sensitivities, params: SensitivityParams) -> SensitivityCharges:
    """Delta, vega and curvature margin per account from its sensitivities (module docstring)."""
    weights = params.risk_weights(sens.underlyings)
    rho = params.correlation_matrix(sens.underlyings)
    weighted_total = sens.delta_usd * weights
    delta_margin = np.minimum(
        correlated_norm(weighted_total, rho), correlated_norm(sens.position_delta_usd * weights, rho)
    )

    vega_risk = params.vega_risk_weight * sens.vega_usd  # (A, U, B)
    per_underlying = correlated_norm(vega_risk, params.vega_bucket_matrix())  # (A, U)
    net = np.clip(vega_risk.sum(axis=2), -per_underlying, per_underlying)
    across = np.sum(per_underlying**2, axis=1) - np.sum(net**2, axis=1) + quadratic_form(net, rho)
    vega_margin = np.sqrt(np.maximum(across, 0.0))

    if params.curvature:
        curvature = np.maximum(0.0, -0.5 * sens.cash_gamma_usd * weights**2).sum(axis=1)
    else:
        curvature = np.zeros(sens.delta_usd.shape[0])
    return SensitivityCharges(
        delta_usd=delta_margin,
        vega_usd=vega_margin,
        curvature_usd=curvature,
        weighted_delta_usd=weighted_total,
    )


@dataclass(frozen=True, slots=True)
class SensitivityMargin:
    """The sensitivity model: `evaluate` is a few sparse products and (A × U) array operations."""

    params: SensitivityParams = field(default_factory=SensitivityParams)
    name: str = "sensitivity"

    def __post_init__(self) -> None:
        check_instance(self.params, SensitivityParams, "params")

    def sensitivities(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> Sensitivities:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        return book_sensitivities(book, market, valuation, self.params)

    def charges(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> SensitivityCharges:
        return sensitivity_charges(self.sensitivities(book, market, valuation), self.params)

    def evaluate(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> MarginResult:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        charges = sensitivity_charges(book_sensitivities(book, market, valuation, self.params), self.params)
        initial = charges.initial_margin_usd
        check_finite(initial, "sensitivity initial margin")
        check_all(initial >= 0.0, "sensitivity IM >= 0")
        # Equity is model-independent: reuse the cross kernel's value pass (requirements unused).
        return risk_based_result(
            self.name,
            book,
            market,
            valuation,
            initial_margin_usd=initial,
            maintenance_margin_usd=self.params.maintenance_fraction * initial,
        )

    def breakdown(
        self,
        book: Book,
        market: MarketState,
        account_rows: Sequence[int],
        valuation: InstrumentValuation | None = None,
    ) -> Breakdown:
        """Per-position values and collateral as in the cross model; the account requirement (a norm
        over the account, not a sum over positions) is split over positions pro rata to each one's
        standalone charge RW_u·|delta| + VRW·|σ·vega|. `sensitivities` and `charges` explain it."""
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        rows = np.asarray(account_rows, dtype=np.int64)
        base = cross_breakdown(book, market, valuation, OptionMarginParams(), rows)
        sub = book.select(rows)
        result = self.evaluate(sub, market, valuation)
        inst = base.position_instrument
        table = book.instruments
        weights = np.array(
            [
                self.params.delta_risk_weight.get(u, self.params.default_delta_risk_weight)
                for u in table.underlyings
            ]
        )[table.underlying_index[inst]]
        delta = np.abs(base.quantity * valuation.delta_usd[inst] * valuation.spot_usd[inst])
        vol = np.where(np.isfinite(valuation.implied_vol[inst]), valuation.implied_vol[inst], 0.0)
        vega = np.abs(base.quantity * valuation.vega_usd[inst] * vol)
        return allocate_requirement(
            base,
            positions_per_account=np.diff(sub.positions.indptr),
            initial_margin_usd=result.initial_margin_usd,
            maintenance_margin_usd=result.maintenance_margin_usd,
            weight=weights * delta + self.params.vega_risk_weight * vega,
        )

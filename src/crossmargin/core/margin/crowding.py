"""Crowding add-on (behavioural margin): more margin for the crowded side of a crowded market.

When one side of a market is crowded (open interest in few accounts, one-sided positioning,
extreme funding, open interest built up fast), a shock forces liquidations larger than any one
account's margin assumes: the forced sellers sell into each other (Brunnermeier and Pedersen,
"Predatory trading", J. Finance 60(4), 2005; "Market liquidity and funding liquidity", RFS 22(6),
2009). High funding and basis precede crash risk and liquidations in crypto (Schmeling, Schrimpf
and Todorov, "Crypto carry", BIS Working Papers 1087, 2023). This module prices that as an add-on
on each account's exposure on the crowded side, growing with the market's crowding and with the
account's share of that side. Float64 risk maths throughout; USD.

Per underlying u, each account's delta D_au (units of u) = Σ_p q_p · delta_p over its positions
on u, plus its balance of the asset named u only where it offsets a short (collateral is not
levered, so it never creates a long exposure: the sensitivity model's rule). Its exposure in USD
is |D_au| · S_u at the index S_u. Totals, concentration and shares are in units, so a price move
alone does not change anyone's share.

Book signals, per underlying and side (long: D > 0; short: D < 0):
    side total        L_u = Σ_a max(D_au, 0),   S_u = Σ_a max(-D_au, 0)
    imbalance         I_u = (L_u - S_u) / (L_u + S_u) ∈ [-1, 1]; the long side sees max(I, 0),
                      the short side max(-I, 0)
    concentration     H_u^side = Σ_a (|D_au| / side total)²   (Herfindahl-Hirschman index of
                      the side; 1/H is its effective number of accounts; US DOJ/FTC Horizontal
                      Merger Guidelines, 2023, §2.3)
    account share     s_au = |D_au| / side total of its side ∈ [0, 1]
Market signals, per underlying (from history: `MarketCrowding`), NaN = unknown:
    funding           annualised funding rate f (fraction/year); the long side sees max(f, 0),
                      the short side max(-f, 0) (longs pay when f > 0: the longs are crowded)
    open interest     OI today / trailing mean OI (both sides: leverage built up)
Each signal x becomes a ramp r(x) = clip((x - threshold) / (full - threshold), 0, 1), and the
side's crowding score is the weighted mean of the known ramps:

    c_u^side = Σ_j w_j r_j / Σ_{j known} w_j        ∈ [0, 1]

The add-on rate of an account on u, and its add-on:

    rate_au   = min(rate_cap, rate_at_full_crowding · c_u^side(a,u) · (1 + share_slope · s_au))
    add-on_a  = Σ_u rate_au · |D_au| · S_u     (IM, USD);   MM add-on = maintenance_fraction · IM add-on

Every piece is non-decreasing in every signal and in the share, so more crowding never lowers the
add-on and a larger share never lowers it (tests/core/margin/test_crowding.py, hypothesis).

The book signals are measured once, on the whole book (`crowding_state`), and frozen into the
`CrowdingState` the model carries: each account's add-on is then a function of its own positions
and that state, so the long-lived engine's incremental re-margining stays exact; refresh the state
(a new `CrowdedMargin` through `RiskEngine.use_model`) when the book has moved.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.checks import check_all, check_range
from crossmargin.core.jit import kernel, prange
from crossmargin.core.margin import MarginModel
from crossmargin.core.margin.result import Breakdown, MarginResult, margin_ratio
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue
from crossmargin.errors import InputError

if TYPE_CHECKING:
    import scipy.sparse as sp

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

SIGNALS = ("funding", "open_interest", "imbalance", "concentration")


def ramp(value: FloatArray | float, *, threshold: float, full: float) -> FloatArray:
    """clip((value - threshold) / (full - threshold), 0, 1); NaN stays NaN (an unknown signal)."""
    x = np.asarray(value, dtype=np.float64)
    ramped: FloatArray = np.clip((x - threshold) / (full - threshold), 0.0, 1.0)
    return ramped


@dataclass(frozen=True, slots=True, kw_only=True)
class CrowdingParams:
    """Thresholds (where a signal starts to count), full levels (where it counts fully), weights,
    slopes and the cap of the crowding add-on (module docstring for the formulas).

    Defaults: funding from 10 % to 50 % a year (Binance's default 0.01 % per 8 h is 10.95 %);
    open interest from 1.15x to 1.6x its trailing 30-day mean; imbalance from 0.2 to 0.8; a side's
    Herfindahl index from 0.10 (ten equal holders) to 0.50 (two); 5 % of the exposure at full
    crowding, up to 3x that for an account that is the whole side, never above 15 %."""

    funding_threshold_apr: float = 0.10
    funding_full_apr: float = 0.50
    open_interest_threshold: float = 1.15
    open_interest_full: float = 1.60
    imbalance_threshold: float = 0.20
    imbalance_full: float = 0.80
    concentration_threshold: float = 0.10
    concentration_full: float = 0.50
    weight_funding: float = 0.30
    weight_open_interest: float = 0.30
    weight_imbalance: float = 0.20
    weight_concentration: float = 0.20
    rate_at_full_crowding: float = 0.05
    share_slope: float = 2.0
    rate_cap: float = 0.15
    maintenance_fraction: float = 0.5
    open_interest_window_days: int = 30
    funding_halflife_days: float = 3.0

    def __post_init__(self) -> None:
        for low, high, _signal in (
            ("funding_threshold_apr", "funding_full_apr", "funding"),
            ("open_interest_threshold", "open_interest_full", "open_interest"),
            ("imbalance_threshold", "imbalance_full", "imbalance"),
            ("concentration_threshold", "concentration_full", "concentration"),
        ):
            lo, hi = getattr(self, low), getattr(self, high)
            check_range(lo, low=0.0, high=np.inf, name=f"crowding.{low}")
            if not hi > lo:
                raise InputError(f"crowding.{high}", f"must be above {low} ({lo}), got {hi}")
        for name in SIGNALS:
            check_range(getattr(self, f"weight_{name}"), low=0.0, high=1.0, name=f"crowding.weight_{name}")
        if sum(self.weights) <= 0.0:
            raise InputError("crowding.weight_*", "at least one signal weight must be positive")
        check_range(self.rate_at_full_crowding, low=0.0, high=1.0, name="crowding.rate_at_full_crowding")
        check_range(self.share_slope, low=0.0, high=100.0, name="crowding.share_slope")
        check_range(self.rate_cap, low=0.0, high=1.0, name="crowding.rate_cap")
        check_range(self.maintenance_fraction, low=0.0, high=1.0, name="crowding.maintenance_fraction")
        check_range(
            self.open_interest_window_days, low=2, high=3650, name="crowding.open_interest_window_days"
        )
        check_range(self.funding_halflife_days, low=0.0, high=365.0, name="crowding.funding_halflife_days")

    @property
    def weights(self) -> tuple[float, float, float, float]:
        """(funding, open interest, imbalance, concentration) weights, the order of SIGNALS."""
        return (
            self.weight_funding,
            self.weight_open_interest,
            self.weight_imbalance,
            self.weight_concentration,
        )


def crowding_score(
    params: CrowdingParams,
    *,
    funding_apr: FloatArray | float,
    open_interest_ratio: FloatArray | float,
    imbalance: FloatArray | float,
    concentration: FloatArray | float,
) -> FloatArray:
    """One side's crowding score c ∈ [0, 1], broadcast over the inputs: the weighted mean of the
    known signals' ramps (NaN = unknown, left out of numerator and denominator; 0 if none is known).

    funding_apr and imbalance are the side's own (positive = this side is the crowded one)."""
    ramps = (
        ramp(funding_apr, threshold=params.funding_threshold_apr, full=params.funding_full_apr),
        ramp(open_interest_ratio, threshold=params.open_interest_threshold, full=params.open_interest_full),
        ramp(imbalance, threshold=params.imbalance_threshold, full=params.imbalance_full),
        ramp(concentration, threshold=params.concentration_threshold, full=params.concentration_full),
    )
    stacked = np.stack(np.broadcast_arrays(*ramps))
    weights = np.asarray(params.weights).reshape((4,) + (1,) * (stacked.ndim - 1))
    known = ~np.isnan(stacked)
    numerator = np.sum(np.where(known, stacked, 0.0) * weights, axis=0)
    denominator = np.sum(known * weights, axis=0)
    score: FloatArray = np.where(
        denominator > 0.0, numerator / np.where(denominator > 0.0, denominator, 1.0), 0.0
    )
    return score


def crowding_rate(
    params: CrowdingParams, *, score: FloatArray | float, share: FloatArray | float
) -> FloatArray:
    """Add-on rate on |exposure|: min(cap, rate_at_full_crowding · c · (1 + share_slope · s)),
    broadcast; score c and share s clipped to [0, 1]."""
    c = np.clip(np.asarray(score, dtype=np.float64), 0.0, 1.0)
    s = np.clip(np.asarray(share, dtype=np.float64), 0.0, 1.0)
    rate: FloatArray = np.minimum(
        params.rate_cap, params.rate_at_full_crowding * c * (1.0 + params.share_slope * s)
    )
    return rate


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketCrowding:
    """Market-wide crowding signals per underlying, from history (`core.crowding_history`):
    annualised funding rate (fraction/year; > 0 = longs pay) and open interest over its trailing
    mean. NaN = not known for that underlying (its weight drops out of the score)."""

    underlyings: tuple[str, ...]
    funding_apr: FloatArray
    open_interest_ratio: FloatArray

    def __post_init__(self) -> None:
        n = len(self.underlyings)
        for name in ("funding_apr", "open_interest_ratio"):
            values = np.asarray(getattr(self, name), dtype=np.float64)
            if values.shape != (n,):
                raise InputError(
                    f"crowding.{name}", f"shape {values.shape}, expected ({n},): one per underlying"
                )
            if np.any(np.isinf(values)):
                raise InputError(f"crowding.{name}", "must be finite (NaN = unknown)")
        if np.any(np.asarray(self.open_interest_ratio) < 0.0):
            raise InputError("crowding.open_interest_ratio", "must be >= 0")

    def for_underlyings(self, underlyings: Sequence[str]) -> tuple[FloatArray, FloatArray]:
        """(funding_apr, open_interest_ratio) in the order of `underlyings`; NaN for the unknown."""
        at = {u: n for n, u in enumerate(self.underlyings)}
        rows = np.array([at.get(u, -1) for u in underlyings], dtype=np.int64)
        safe_rows = np.maximum(rows, 0)
        funding = np.asarray(self.funding_apr, dtype=np.float64)
        ratio = np.asarray(self.open_interest_ratio, dtype=np.float64)
        if funding.size == 0:
            return np.full(rows.size, np.nan), np.full(rows.size, np.nan)
        return (
            np.where(rows >= 0, funding[safe_rows], np.nan),
            np.where(rows >= 0, ratio[safe_rows], np.nan),
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class CrowdingState:
    """The book's crowding, frozen at one moment, per underlying of the book's instrument table
    (U,): side totals (units of the underlying; USD at the measuring prices), the signals each
    side sees and each side's score."""

    underlyings: tuple[str, ...]
    long_total_units: FloatArray
    short_total_units: FloatArray
    long_total_usd: FloatArray
    short_total_usd: FloatArray
    imbalance: FloatArray
    concentration_long: FloatArray
    concentration_short: FloatArray
    funding_apr: FloatArray
    open_interest_ratio: FloatArray
    score_long: FloatArray
    score_short: FloatArray


def account_exposure(book: Book, valuation: InstrumentValuation) -> sp.csr_array:
    """Delta D (accounts × underlyings, CSR, units of each underlying): positions' q·delta summed
    per underlying, plus the balance of the asset named like the underlying where it offsets a short
    (module docstring). Sparse throughout: memory of the order of the non-zeros."""
    import scipy.sparse as sp  # on first use: importing scipy costs ~0.3 s (core.position_matrix)

    table = book.instruments
    n_u = len(table.underlyings)
    shape = (book.n_accounts, n_u)
    per_contract = valuation.delta_usd  # (I,) units of the underlying per contract
    to_underlying = sp.csr_array(
        (per_contract, (np.arange(table.n_instruments), table.underlying_index)),
        shape=(table.n_instruments, n_u),
    )
    exposure = sp.csr_array(book.positions.to_scipy() @ to_underlying)
    exposure.sum_duplicates()
    exposure.eliminate_zeros()  # a hedge netted to exactly zero is no exposure
    exposure.sort_indices()
    # Collateral only ever offsets a short (never creates an entry): gather each short entry's
    # balance of the asset named like its underlying, one vectorised gather.
    asset_of = np.array([book.assets.index.get(u, -1) for u in table.underlyings], dtype=np.int64)
    if not np.any(asset_of >= 0) or exposure.nnz == 0:
        return exposure
    delta = exposure.data
    k = asset_of[exposure.indices]
    short = (delta < 0.0) & (k >= 0)
    if not np.any(short):
        return exposure
    rows = np.repeat(np.arange(shape[0], dtype=np.int64), np.diff(exposure.indptr))
    held = np.maximum(book.balances[rows[short], k[short]], 0.0)
    delta = delta.copy()
    delta[short] = np.minimum(delta[short] + held, 0.0)
    offset = sp.csr_array((delta, exposure.indices, exposure.indptr), shape=shape)
    offset.eliminate_zeros()
    return offset


def underlying_spot(book: Book, valuation: InstrumentValuation) -> FloatArray:
    """Index price per underlying, USD (U,), from the instruments' revaluation."""
    spot = np.zeros(len(book.instruments.underlyings))
    spot[book.instruments.underlying_index] = valuation.spot_usd
    return spot


def lookup(matrix: sp.csr_array, rows: IntArray, cols: IntArray) -> FloatArray:
    """matrix[rows[n], cols[n]] for every n (0 where not stored), by key search, vectorised."""
    n_cols = matrix.shape[1]
    matrix.sort_indices()
    stored = (
        np.repeat(np.arange(matrix.shape[0], dtype=np.int64), np.diff(matrix.indptr)) * n_cols
        + matrix.indices
    )
    wanted = np.asarray(rows, dtype=np.int64) * n_cols + np.asarray(cols, dtype=np.int64)
    if stored.size == 0:
        return np.zeros(wanted.size)
    at = np.minimum(np.searchsorted(stored, wanted), stored.size - 1)
    values: FloatArray = np.where(stored[at] == wanted, matrix.data[at], 0.0)
    return values


def crowding_state(
    book: Book,
    valuation: InstrumentValuation,
    params: CrowdingParams,
    market: MarketCrowding | None = None,
) -> CrowdingState:
    """Measure the book's crowding per underlying (module docstring); `market` adds the history
    signals (None: book signals only)."""
    exposure = account_exposure(book, valuation).tocsc()
    spot = underlying_spot(book, valuation)
    n_u = exposure.shape[1]
    rows_per_u = np.repeat(np.arange(n_u), np.diff(exposure.indptr))
    d = exposure.data
    long_part = np.maximum(d, 0.0)
    short_part = np.maximum(-d, 0.0)
    long_total = np.bincount(rows_per_u, weights=long_part, minlength=n_u).astype(np.float64)
    short_total = np.bincount(rows_per_u, weights=short_part, minlength=n_u).astype(np.float64)
    h_long = np.bincount(
        rows_per_u, weights=(long_part / _nonzero(long_total)[rows_per_u]) ** 2, minlength=n_u
    )
    h_short = np.bincount(
        rows_per_u, weights=(short_part / _nonzero(short_total)[rows_per_u]) ** 2, minlength=n_u
    )
    gross = long_total + short_total
    imbalance = np.where(gross > 0.0, (long_total - short_total) / _nonzero(gross), 0.0)
    underlyings = book.instruments.underlyings
    if market is None:
        funding = np.full(n_u, np.nan)
        oi_ratio = np.full(n_u, np.nan)
    else:
        funding, oi_ratio = market.for_underlyings(underlyings)
    score_long = crowding_score(
        params,
        funding_apr=funding,
        open_interest_ratio=oi_ratio,
        imbalance=np.maximum(imbalance, 0.0),
        concentration=h_long.astype(np.float64),
    )
    score_short = crowding_score(
        params,
        funding_apr=-funding,
        open_interest_ratio=oi_ratio,
        imbalance=np.maximum(-imbalance, 0.0),
        concentration=h_short.astype(np.float64),
    )
    return CrowdingState(
        underlyings=underlyings,
        long_total_units=long_total,
        short_total_units=short_total,
        long_total_usd=long_total * spot,
        short_total_usd=short_total * spot,
        imbalance=imbalance,
        concentration_long=h_long.astype(np.float64),
        concentration_short=h_short.astype(np.float64),
        funding_apr=funding,
        open_interest_ratio=oi_ratio,
        score_long=score_long,
        score_short=score_short,
    )


def _nonzero(values: FloatArray) -> FloatArray:
    """values where > 0, else 1 (a safe divisor; the caller masks those entries)."""
    safe: FloatArray = np.where(values > 0.0, values, 1.0)
    return safe


def crowding_addon_usd(
    book: Book, valuation: InstrumentValuation, state: CrowdingState, params: CrowdingParams
) -> FloatArray:
    """IM add-on per account, USD (A,): Σ_u rate_au · |D_au| · S_u (module docstring), one fused
    numba pass over the accounts (parallel; nothing of size nnz is materialised). The sparse
    path (`crowding_terms`) computes the same terms for breakdowns and is the tests' reference."""
    if state.underlyings != book.instruments.underlyings:
        raise InputError("crowding.state", "the state was measured on another instrument table")
    table = book.instruments
    positions = book.positions
    asset_of = np.array([book.assets.index.get(u, -1) for u in table.underlyings], dtype=np.int64)
    out = np.zeros(book.n_accounts)
    _addon_kernel.for_work(3 * positions.nnz)(  # interpreted: ~3 us a position (core.jit)
        positions.indptr.astype(np.int64),
        positions.indices.astype(np.int64),
        positions.data.astype(np.float64),
        np.ascontiguousarray(valuation.delta_usd, dtype=np.float64),
        table.underlying_index.astype(np.int64),
        asset_of,
        np.ascontiguousarray(book.balances, dtype=np.float64),
        underlying_spot(book, valuation),
        state.long_total_units,
        state.short_total_units,
        state.score_long,
        state.score_short,
        params.rate_at_full_crowding,
        params.share_slope,
        params.rate_cap,
        out,
    )
    return out


@kernel(nogil=True, inline="always")
def _rate(score: float, share: float, rate_full: float, slope: float, cap: float) -> float:
    """crowding_rate for one exposure (score and share already in [0, 1])."""
    return min(cap, rate_full * score * (1.0 + slope * share))


@kernel(parallel=True, nogil=True)
def _addon_kernel(
    indptr: np.ndarray,
    indices: np.ndarray,
    quantity: np.ndarray,
    delta: np.ndarray,
    underlying_of: np.ndarray,
    asset_of: np.ndarray,
    balances: np.ndarray,
    spot: np.ndarray,
    long_total: np.ndarray,
    short_total: np.ndarray,
    score_long: np.ndarray,
    score_short: np.ndarray,
    rate_full: float,
    slope: float,
    cap: float,
    out: np.ndarray,
) -> None:
    n_accounts = indptr.shape[0] - 1
    chunk = 4096
    n_chunks = (n_accounts + chunk - 1) // chunk
    most = 0
    for a in range(n_accounts):
        most = max(most, indptr[a + 1] - indptr[a])
    for c in prange(n_chunks):
        seen_u = np.empty(max(most, 1), dtype=np.int64)  # distinct underlyings of one account
        seen_d = np.empty(max(most, 1), dtype=np.float64)  # their summed deltas
        for a in range(c * chunk, min((c + 1) * chunk, n_accounts)):
            n_seen = 0
            for p in range(indptr[a], indptr[a + 1]):
                i = indices[p]
                u = underlying_of[i]
                j = 0
                while j < n_seen and seen_u[j] != u:  # a handful of underlyings per account
                    j += 1
                if j == n_seen:
                    seen_u[j] = u
                    seen_d[j] = 0.0
                    n_seen += 1
                seen_d[j] += quantity[p] * delta[i]
            total = 0.0
            for j in range(n_seen):
                u = seen_u[j]
                d = seen_d[j]
                k = asset_of[u]
                if d < 0.0 and k >= 0:
                    d = min(d + max(balances[a, k], 0.0), 0.0)
                if d > 0.0:
                    side = long_total[u]
                    score = score_long[u]
                elif d < 0.0:
                    side = short_total[u]
                    score = score_short[u]
                else:
                    continue
                share = min(abs(d) / side, 1.0) if side > 0.0 else 1.0
                score = min(max(score, 0.0), 1.0)
                total += _rate(score, share, rate_full, slope, cap) * abs(d) * spot[u]
            out[a] = total


def crowding_terms(
    book: Book, valuation: InstrumentValuation, state: CrowdingState, params: CrowdingParams
) -> FloatArray:
    """The add-on per account by the sparse path (the kernel's reference; breakdowns use its
    per-exposure rates)."""
    rate, exposure = _rates(book, valuation, state, params)
    rows = np.repeat(np.arange(book.n_accounts), np.diff(exposure.indptr))
    addon: FloatArray = np.bincount(
        rows,
        weights=rate * np.abs(exposure.data) * underlying_spot(book, valuation)[exposure.indices],
        minlength=book.n_accounts,
    ).astype(np.float64)
    return addon


def _rates(
    book: Book, valuation: InstrumentValuation, state: CrowdingState, params: CrowdingParams
) -> tuple[FloatArray, sp.csr_array]:
    """Rate per non-zero exposure (aligned with the CSR's data) and the exposure CSR."""
    exposure = account_exposure(book, valuation)
    u = exposure.indices
    d = exposure.data
    side_total = np.where(d > 0.0, state.long_total_units[u], state.short_total_units[u])
    share = np.where(side_total > 0.0, np.abs(d) / np.where(side_total > 0.0, side_total, 1.0), 1.0)
    score = np.where(d > 0.0, state.score_long[u], state.score_short[u])
    return crowding_rate(params, score=score, share=share), exposure


@dataclass(frozen=True, slots=True)
class CrowdedMargin:
    """Any pooled margin model plus the crowding add-on: IM + add-on, MM + maintenance_fraction ·
    add-on, equity unchanged. `state`: the book's crowding (`crowding_state`), frozen; give one
    (`measured`, `engine.crowding_run.crowded_model`) whenever the model margins parts of a book
    (`RiskEngine`'s incremental path, `Book.select`). None measures each evaluated book on its own
    (book signals only): right for a whole book, not for a sub-book of it."""

    base: MarginModel
    params: CrowdingParams = field(default_factory=CrowdingParams)
    state: CrowdingState | None = None

    def __post_init__(self) -> None:
        if not hasattr(self.base, "evaluate") or not hasattr(self.base, "breakdown"):
            raise InputError("base", "must be a margin model (evaluate, breakdown)")
        if getattr(self.base, "name", "") == "isolated":
            raise InputError("base", "the crowding add-on applies to pooled models (cross, portfolio, ...)")
        if not isinstance(self.params, CrowdingParams):
            raise InputError("params", f"must be CrowdingParams, got {type(self.params).__name__}")

    @classmethod
    def measured(
        cls,
        base: MarginModel,
        book: Book,
        market: MarketState,
        params: CrowdingParams | None = None,
        market_crowding: MarketCrowding | None = None,
    ) -> CrowdedMargin:
        """The model with its state measured on `book` at `market` (one revaluation)."""
        chosen = params if params is not None else CrowdingParams()
        state = crowding_state(book, revalue(book.instruments, market), chosen, market_crowding)
        return cls(base=base, params=chosen, state=state)

    @property
    def name(self) -> str:
        return f"{self.base.name}+crowding"

    def _state(self, book: Book, valuation: InstrumentValuation) -> CrowdingState:
        return self.state if self.state is not None else crowding_state(book, valuation, self.params)

    def evaluate(
        self, book: Book, market: MarketState, valuation: InstrumentValuation | None = None
    ) -> MarginResult:
        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        result = self.base.evaluate(book, market, valuation)
        addon = crowding_addon_usd(book, valuation, self._state(book, valuation), self.params)
        return with_addon(result, addon, self.params.maintenance_fraction, name=self.name)

    def breakdown(
        self,
        book: Book,
        market: MarketState,
        account_rows: Sequence[int],
        valuation: InstrumentValuation | None = None,
    ) -> Breakdown:
        """The base breakdown with each account's add-on split over its positions pro rata to
        each position's rate · |q·delta·S| on the side its account is on (evenly if none)."""
        import scipy.sparse as sp  # on first use: importing scipy costs ~0.3 s (core.position_matrix)

        valuation = valuation if valuation is not None else revalue(book.instruments, market)
        base = self.base.breakdown(book, market, account_rows, valuation)
        rows = np.asarray(account_rows, dtype=np.int64)
        sub = book.select(rows)
        state = self._state(book, valuation)
        addon = crowding_addon_usd(sub, valuation, state, self.params)
        rate, exposure = _rates(sub, valuation, state, self.params)
        signed_rates = sp.csr_array(
            (rate * np.sign(exposure.data), exposure.indices, exposure.indptr), shape=exposure.shape
        )
        counts = np.diff(sub.positions.indptr)
        owner = np.repeat(np.arange(rows.size), counts)
        inst = base.position_instrument
        signed = base.quantity * valuation.delta_usd[inst] * valuation.spot_usd[inst]  # USD
        u = book.instruments.underlying_index[inst]
        weight = np.maximum(lookup(signed_rates, owner, u) * signed, 0.0)
        total = np.bincount(owner, weights=weight, minlength=rows.size)
        even = 1.0 / np.maximum(counts, 1)[owner]
        share = np.where(total[owner] > 0.0, weight / np.where(total > 0.0, total, 1.0)[owner], even)
        extra = share * addon[owner]
        return dataclasses.replace(
            base,
            initial_margin_usd=base.initial_margin_usd + extra,
            maintenance_margin_usd=base.maintenance_margin_usd + self.params.maintenance_fraction * extra,
        )


def with_addon(
    result: MarginResult, addon_usd: FloatArray, maintenance_fraction: float, *, name: str
) -> MarginResult:
    """`result` with `addon_usd` (A,) added to IM and maintenance_fraction of it to MM; equity and
    bankruptcy unchanged, available and margin ratio recomputed."""
    check_all(addon_usd >= 0.0, "crowding add-on >= 0")
    initial = result.initial_margin_usd + addon_usd
    maintenance = result.maintenance_margin_usd + maintenance_fraction * addon_usd
    equity = result.equity_usd
    ratio = margin_ratio(maintenance, equity, result.bankrupt)
    return dataclasses.replace(
        result,
        model=name,
        initial_margin_usd=initial,
        maintenance_margin_usd=maintenance,
        available_usd=equity - initial,
        margin_ratio=ratio,
    )

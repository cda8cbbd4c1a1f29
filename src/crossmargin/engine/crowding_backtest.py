"""Back-test of the crowding add-on on real history: is margin raised before large liquidation
days, or after?

An event study (MacKinlay, "Event Studies in Economics and Finance", J. Econ. Literature 35(1),
1997): per symbol, the market's crowding signals (funding, open interest over its trailing mean;
`core.market_history`) give each day the add-on rate that would be in force on the next day (data
up to the close of day t sets the rate for day t + 1: no look-ahead). There is no account-level
history, so the book signals (imbalance, concentration) are unknown and drop out of the score, and
the account is a representative one with a fixed share of its side (`share`).

Large liquidation days are read from the data (no liquidation volumes exist in it, README):
    open_interest   the largest one-day falls of open interest (OI[t] / OI[t-1] - 1; coin-margined
                    contracts have a fixed USD face value, so this is contracts closed, not price)
    price           the largest one-day |log returns|
each the `events_per_symbol` most extreme days, at least `min_separation_days` apart (declustered,
so one crash counts once). The liquidated side is the long side on a down day, the short side on
an up day. For every event the add-on rate of that side is read at offsets k = -window..+window
(k = 0: the rate in force during the event day, set the evening before). Reported:

    in force on the day      mean rate at k = 0 against the unconditional mean of both sides
    before vs after          mean over k in [-pre+1, 0] against mean over k in [1, post]
    raised before            events with rate(k=0) > rate(k=post) against those with <, ties
                             (both 0) left out, and the one-sided sign-test p-value (binomial,
                             1/2; Cowan, "Nonparametric event study tests", Rev. Quant. Finance
                             and Accounting 2, 1992)
    elevated                 share of events whose rate in force exceeds the unconditional mean
    permutation p-value      share of `permutations` random day sets (same size, same side rule,
                             seeded) whose mean in-force rate reaches the events' (Good,
                             "Permutation, Parametric and Bootstrap Tests of Hypotheses", 2005)
    coverage                 events whose one-day loss of the liquidated side exceeds the base
                             margin alone, and base + add-on

For comparison the same profile of a volatility margin: RiskMetrics EWMA (λ = 0.94) daily vol in
force, × z(coverage) × √horizon (J.P. Morgan/Reuters, RiskMetrics Technical Document, 1996): a
margin that follows realised volatility rises after the event, the procyclicality CPMI-IOSCO
(PFMI 6.7) asks to limit.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt
from scipy.stats import binomtest, norm

from crossmargin.core.checks import check_range
from crossmargin.core.margin.crowding import CrowdingParams, crowding_rate, crowding_score
from crossmargin.core.market_history import ewma_volatility, funding_apr, open_interest_ratio
from crossmargin.core.var.history import PriceHistory
from crossmargin.engine.ports import FundingSource, OpenInterestSource, PriceHistorySource
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

EVENT_RULES = ("open_interest", "price")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrowdingBacktestParams:
    crowding: CrowdingParams = field(default_factory=CrowdingParams)
    event_rule: str = "open_interest"
    events_per_symbol: int = 10
    min_separation_days: int = 7
    window_days: int = 10
    pre_days: int = 3
    post_days: int = 3
    share: float = 0.0
    permutations: int = 2_000
    seed: int = 7
    ewma_lambda: float = 0.94
    coverage: float = 0.99
    horizon_days: int = 1
    first_day: str | None = None
    last_day: str | None = None

    def __post_init__(self) -> None:
        if self.event_rule not in EVENT_RULES:
            raise InputError(
                "event_rule", f"must be one of {', '.join(EVENT_RULES)}, got {self.event_rule!r}"
            )
        check_range(self.events_per_symbol, low=1, high=1_000, name="events_per_symbol")
        check_range(self.min_separation_days, low=1, high=365, name="min_separation_days")
        check_range(self.window_days, low=1, high=90, name="window_days")
        check_range(self.pre_days, low=1, high=self.window_days, name="pre_days")
        check_range(self.post_days, low=1, high=self.window_days, name="post_days")
        check_range(self.share, low=0.0, high=1.0, name="share")
        check_range(self.permutations, low=0, high=1_000_000, name="permutations")
        check_range(self.ewma_lambda, low=0.0, high=1.0, include_high=False, name="ewma_lambda")
        check_range(self.coverage, low=0.5, high=1.0, include_high=False, name="coverage")
        check_range(self.horizon_days, low=1, high=30, name="horizon_days")


@dataclass(frozen=True, slots=True)
class SymbolSeries:
    """One symbol's aligned daily series (T,): the rates in force each day (set the day before)."""

    symbol: str
    days: npt.NDArray[np.datetime64]
    log_return: FloatArray
    open_interest_change: FloatArray
    addon_rate_long: FloatArray
    addon_rate_short: FloatArray
    volatility_margin_rate: FloatArray
    funding_known: bool


@dataclass(frozen=True, slots=True)
class Event:
    symbol: str
    day: np.datetime64
    row: int
    open_interest_change: float
    log_return: float
    side: str  # the liquidated side: "long" on a down day, "short" on an up day
    addon_rate_in_force: float
    addon_rate_after: float
    volatility_margin_before: float
    volatility_margin_after: float


@dataclass(frozen=True, slots=True)
class LeadLag:
    """Summary of one margin measure around the events (module docstring)."""

    in_force_mean: float
    unconditional_mean: float
    before_mean: float
    after_mean: float
    raised_before: int
    lowered_before: int
    sign_test_p_value: float
    elevated_share: float
    peak_offset_days: int
    permutation_p_value: float


@dataclass(frozen=True, slots=True)
class CrowdingBacktest:
    params: CrowdingBacktestParams
    offsets: IntArray
    addon_profile: FloatArray  # mean add-on rate of the liquidated side at each offset, (2W+1,)
    volatility_profile: FloatArray  # mean volatility margin rate at each offset
    addon: LeadLag
    volatility: LeadLag
    events: tuple[Event, ...]
    series: tuple[SymbolSeries, ...]
    exceeded_base: int  # events whose loss exceeded the volatility margin alone
    exceeded_with_addon: int  # ... and the volatility margin plus the add-on


def _aligned_close(history: PriceHistory, symbol: str, days: npt.NDArray[np.datetime64]) -> FloatArray:
    close = np.full(days.size, np.nan)
    if not history.has(symbol):
        return close
    column = history.close_usd[:, history.column(symbol)]
    at = np.searchsorted(history.days, days)
    inside = at < history.n_days
    hit = np.zeros(days.size, dtype=bool)
    hit[inside] = history.days[at[inside]] == days[inside]
    close[hit] = column[at[hit]]
    return close


def symbol_series(
    symbol: str,
    prices: PriceHistory,
    open_interest: FloatArray,
    funding_8h: FloatArray,
    days: npt.NDArray[np.datetime64],
    params: CrowdingBacktestParams,
) -> SymbolSeries:
    """The add-on and volatility margin rates in force on each of `days` (set at the previous
    close), with the day's log return and open-interest change."""
    crowding = params.crowding
    close = _aligned_close(prices, symbol, days)
    with np.errstate(invalid="ignore", divide="ignore"):
        log_return = np.r_[np.nan, np.log(close[1:] / close[:-1])]
        oi_change = np.r_[np.nan, open_interest[1:] / open_interest[:-1] - 1.0]
    ratio = open_interest_ratio(open_interest, window_days=crowding.open_interest_window_days)
    funding = funding_apr(funding_8h, halflife_days=crowding.funding_halflife_days)
    unknown = np.full(days.size, np.nan)
    score_long = crowding_score(
        crowding, funding_apr=funding, open_interest_ratio=ratio, imbalance=unknown, concentration=unknown
    )
    score_short = crowding_score(
        crowding, funding_apr=-funding, open_interest_ratio=ratio, imbalance=unknown, concentration=unknown
    )
    # Unknown OI ratio (first W days) and no funding: no evidence, score 0, but mark the day NaN.
    no_signal = np.isnan(ratio) & np.isnan(funding)
    rate_long = np.where(no_signal, np.nan, crowding_rate(crowding, score=score_long, share=params.share))
    rate_short = np.where(no_signal, np.nan, crowding_rate(crowding, score=score_short, share=params.share))
    z = float(norm.ppf(params.coverage))
    vol_rate = z * np.sqrt(params.horizon_days) * ewma_volatility(log_return, decay=params.ewma_lambda)
    return SymbolSeries(
        symbol=symbol,
        days=days,
        log_return=log_return,
        open_interest_change=oi_change,
        addon_rate_long=_next_day(rate_long),
        addon_rate_short=_next_day(rate_short),
        volatility_margin_rate=_next_day(vol_rate),
        funding_known=bool(np.any(np.isfinite(funding_8h))),
    )


def _next_day(values: FloatArray) -> FloatArray:
    """Set at day t's close, in force on day t + 1."""
    shifted: FloatArray = np.r_[np.nan, values[:-1]]
    return shifted


def pick_events(
    measure: FloatArray, valid: npt.NDArray[np.bool_], *, count: int, separation_days: int
) -> IntArray:
    """Rows of the `count` smallest values of `measure` among `valid` rows, at least
    `separation_days` apart (greedy from the most extreme), in day order."""
    order = np.argsort(np.where(valid, measure, np.inf), kind="stable")
    chosen: list[int] = []
    for row in order[: int(valid.sum())].tolist():  # extreme days first; stops after `count`
        if all(abs(row - c) >= separation_days for c in chosen):
            chosen.append(row)
            if len(chosen) == count:
                break
    return np.sort(np.array(chosen, dtype=np.int64))


def _side_rate(series: SymbolSeries, rows: IntArray, down: npt.NDArray[np.bool_]) -> FloatArray:
    rate: FloatArray = np.where(down, series.addon_rate_long[rows], series.addon_rate_short[rows])
    return rate


def run_crowding_backtest(
    *,
    prices: PriceHistorySource,
    open_interest: OpenInterestSource,
    funding: FundingSource,
    params: CrowdingBacktestParams | None = None,
    symbols: Sequence[str] | None = None,
) -> CrowdingBacktest:
    """The event study of the module docstring over every symbol with open interest and prices."""
    chosen = params if params is not None else CrowdingBacktestParams()
    history = prices.price_history()
    oi = open_interest.open_interest_history()
    rates = funding.funding_history()
    names = tuple(symbols) if symbols is not None else tuple(s for s in oi.symbols if history.has(s))
    if not names:
        raise InputError("symbols", "no symbol has both open interest and price history")
    days = oi.days
    if chosen.first_day is not None:
        days = days[days >= np.datetime64(chosen.first_day, "D")]
    if chosen.last_day is not None:
        days = days[days <= np.datetime64(chosen.last_day, "D")]
    w = chosen.window_days
    offsets = np.arange(-w, w + 1)
    series_list: list[SymbolSeries] = []
    events: list[Event] = []
    addon_rows: list[FloatArray] = []
    vol_rows: list[FloatArray] = []
    random_pool: list[tuple[SymbolSeries, IntArray]] = []
    for symbol in names:  # a handful of symbols; each vectorised over days
        if not oi.has(symbol):
            raise InputError("symbols", f"no open interest history for {symbol!r}")
        series = symbol_series(
            symbol, history, oi.on_days(symbol, days), rates.on_days(symbol, days), days, chosen
        )
        series_list.append(series)
        index = np.arange(days.size)
        usable = (
            np.isfinite(series.addon_rate_long)
            & np.isfinite(series.volatility_margin_rate)
            & np.isfinite(series.log_return)
            & np.isfinite(series.open_interest_change)
            & (index >= w)
            & (index < days.size - w)
        )
        measure = (
            series.open_interest_change
            if chosen.event_rule == "open_interest"
            else -np.abs(series.log_return)
        )
        rows = pick_events(
            measure, usable, count=chosen.events_per_symbol, separation_days=chosen.min_separation_days
        )
        random_pool.append((series, np.flatnonzero(usable)))
        if rows.size == 0:
            continue
        down = series.log_return[rows] < 0.0
        window = rows[:, None] + offsets[None, :]
        addon_window = np.where(
            down[:, None], series.addon_rate_long[window], series.addon_rate_short[window]
        )
        vol_window = series.volatility_margin_rate[window]
        addon_rows.append(addon_window)
        vol_rows.append(vol_window)
        k0 = w
        kp = w + chosen.post_days
        for n, row in enumerate(rows.tolist()):  # ~10 events per symbol: report rows
            events.append(
                Event(
                    symbol=symbol,
                    day=days[row],
                    row=row,
                    open_interest_change=float(series.open_interest_change[row]),
                    log_return=float(series.log_return[row]),
                    side="long" if down[n] else "short",
                    addon_rate_in_force=float(addon_window[n, k0]),
                    addon_rate_after=float(addon_window[n, kp]),
                    volatility_margin_before=float(vol_window[n, k0]),
                    volatility_margin_after=float(vol_window[n, kp]),
                )
            )
    if not events:
        raise InputError("history", "no event day with complete signals in the chosen window")
    addon_matrix = np.vstack(addon_rows)
    vol_matrix = np.vstack(vol_rows)
    loss = np.array([abs(e.log_return) for e in events])
    base = vol_matrix[:, w]
    addon = addon_matrix[:, w]
    # The liquidated side's one-day loss: 1 - e^r for a long on a down day, e^r - 1 for a short.
    realised = np.where([e.side == "long" for e in events], -np.expm1(-loss), np.expm1(loss))
    rng = np.random.default_rng(chosen.seed)
    return CrowdingBacktest(
        params=chosen,
        offsets=offsets,
        addon_profile=np.nanmean(addon_matrix, axis=0),
        volatility_profile=np.nanmean(vol_matrix, axis=0),
        addon=_lead_lag(
            addon_matrix,
            chosen,
            _addon_random(random_pool, len(events), chosen, rng),
            _addon_all(random_pool),
        ),
        volatility=_lead_lag(
            vol_matrix, chosen, _vol_random(random_pool, len(events), chosen, rng), _vol_all(random_pool)
        ),
        events=tuple(events),
        series=tuple(series_list),
        exceeded_base=int(np.sum(realised > base)),
        exceeded_with_addon=int(np.sum(realised > base + addon)),
    )


def _addon_all(pool: list[tuple[SymbolSeries, IntArray]]) -> FloatArray:
    return np.concatenate([np.r_[s.addon_rate_long[rows], s.addon_rate_short[rows]] for s, rows in pool])


def _vol_all(pool: list[tuple[SymbolSeries, IntArray]]) -> FloatArray:
    return np.concatenate([s.volatility_margin_rate[rows] for s, rows in pool])


def _random_days(
    pool: list[tuple[SymbolSeries, IntArray]],
    size: int,
    params: CrowdingBacktestParams,
    rng: np.random.Generator,
) -> tuple[IntArray, IntArray]:
    """(symbol index, row) of `permutations` × `size` random usable days, pooled over symbols."""
    lengths = np.array([rows.size for _, rows in pool])
    flat = rng.integers(0, lengths.sum(), size=(params.permutations, size))
    which = np.searchsorted(np.cumsum(lengths), flat, side="right")
    offset = flat - np.r_[0, np.cumsum(lengths)[:-1]][which]
    return which, offset


def _addon_random(
    pool: list[tuple[SymbolSeries, IntArray]],
    size: int,
    params: CrowdingBacktestParams,
    rng: np.random.Generator,
) -> FloatArray:
    """Mean in-force add-on of the side a random day's return would liquidate, per permutation."""
    if params.permutations == 0:
        return np.zeros(0)
    which, offset = _random_days(pool, size, params, rng)
    values = np.concatenate([_side_rate(s, rows, s.log_return[rows] < 0.0) for s, rows in pool])
    starts = np.r_[0, np.cumsum([rows.size for _, rows in pool])[:-1]]
    means: FloatArray = values[starts[which] + offset].mean(axis=1)
    return means


def _vol_random(
    pool: list[tuple[SymbolSeries, IntArray]],
    size: int,
    params: CrowdingBacktestParams,
    rng: np.random.Generator,
) -> FloatArray:
    if params.permutations == 0:
        return np.zeros(0)
    which, offset = _random_days(pool, size, params, rng)
    values = np.concatenate([s.volatility_margin_rate[rows] for s, rows in pool])
    starts = np.r_[0, np.cumsum([rows.size for _, rows in pool])[:-1]]
    means: FloatArray = values[starts[which] + offset].mean(axis=1)
    return means


def _lead_lag(
    matrix: FloatArray, params: CrowdingBacktestParams, random_means: FloatArray, everything: FloatArray
) -> LeadLag:
    """Summary of an events × offsets matrix of rates (module docstring)."""
    w = params.window_days
    profile = np.nanmean(matrix, axis=0)
    in_force = matrix[:, w]
    observed = float(np.nanmean(in_force))
    after = matrix[:, w + params.post_days]
    unconditional = float(np.nanmean(everything))
    raised = int(np.sum(in_force > after))
    lowered = int(np.sum(in_force < after))
    p_value = (
        float((1 + np.sum(random_means >= observed)) / (1 + random_means.size)) if random_means.size else 1.0
    )
    return LeadLag(
        in_force_mean=observed,
        unconditional_mean=unconditional,
        before_mean=float(np.nanmean(matrix[:, w - params.pre_days + 1 : w + 1])),
        after_mean=float(np.nanmean(matrix[:, w + 1 : w + params.post_days + 1])),
        raised_before=raised,
        lowered_before=lowered,
        sign_test_p_value=float(binomtest(raised, raised + lowered, 0.5, alternative="greater").pvalue)
        if raised + lowered
        else 1.0,
        elevated_share=float(np.mean(in_force > unconditional)),
        peak_offset_days=int(np.nanargmax(profile) - w),
        permutation_p_value=p_value,
    )

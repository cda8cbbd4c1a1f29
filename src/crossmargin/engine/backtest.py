"""Back-test margin models on real history: fixed portfolios walked day by day.

For each day t in [first_day, last_day] the book's accounts (fixed quantities and balances: the
representative portfolios) are priced at that day's closes; each model computes the initial margin
it would have required with prices known up to t (VaR models cut their history at t); the realised
h-day loss is equity_t - equity_{t+h}, both from the full revaluation at the two days' closes.
`core.var.backtest` turns each (margin, loss) pair of series into exceedances, Kupiec and
Christoffersen tests, the worst shortfall and procyclicality measures.

Back-test books hold spot, perpetuals and collateral (no expiries: a fixed option position would
expire, and there is no option history before 2025-12). Funding is not in the realised P&L.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.margin import CrossMargin
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import revalue
from crossmargin.core.var.backtest import BacktestStats, backtest_stats
from crossmargin.core.var.history import NS_PER_DAY, PriceHistory
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.margin_run import ModelChoice, make_model
from crossmargin.engine.ports import PriceHistorySource, VolatilityFilter
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]

DEFAULT_MODELS = ("cross", "var:hs-var99", "var:fhs-es975", "var:mc-es975")
COMPARISON_MODELS = (
    "cross",
    "portfolio:deribit-pm",
    "portfolio:paradex-pm",
    "portfolio:span",
    "portfolio:crossmargin-multi",
    "var:hs-var99",
    "var:fhs-es975",
    "var:mc-es975",
)


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """`model[:preset]`, e.g. cross, portfolio:deribit-pm, var:fhs-es975."""

    model: str
    preset: str | None = None

    @classmethod
    def parse(cls, text: str) -> ModelSpec:
        name, _, preset = text.partition(":")
        return cls(model=name.strip(), preset=preset.strip() or None)

    @property
    def label(self) -> str:
        return self.model if self.preset is None else f"{self.model}:{self.preset}"


@dataclass(frozen=True, slots=True)
class BacktestSeries:
    """One account under one model: margin required and realised h-day loss per day, USD (T,)."""

    account_id: str
    model: str
    margin_usd: FloatArray
    loss_usd: FloatArray
    stats: BacktestStats

    @property
    def exceeded(self) -> npt.NDArray[np.bool_]:
        hits: npt.NDArray[np.bool_] = self.loss_usd > self.margin_usd
        return hits


@dataclass(frozen=True, slots=True)
class BacktestRun:
    book: str
    days: npt.NDArray[np.datetime64]
    horizon_days: int
    coverage: float
    models: tuple[str, ...]
    account_ids: tuple[str, ...]
    series: tuple[BacktestSeries, ...]

    def get(self, account_id: str, model: str) -> BacktestSeries:
        for s in self.series:
            if s.account_id == account_id and s.model == model:
                return s
        raise InputError("backtest", f"no series for {account_id!r} under {model!r}")


def _check_backtest_book(book: Book) -> None:
    kinds = book.instruments.kind
    bad = np.flatnonzero((kinds != InstrumentKind.SPOT) & (kinds != InstrumentKind.PERPETUAL))
    if bad.size:
        raise InputError(
            f"instruments[{book.instruments.ids[int(bad[0])]}]",
            "back-test books hold spot, perpetuals and collateral only (a fixed dated position expires)",
        )


def _priced(
    loaded: LoadedBook, book: Book, history: PriceHistory, row: int, day: np.datetime64
) -> tuple[Book, MarketState]:
    """The book's assets and the market at day `row`'s closes, valued at the end of that day."""
    closes = history.close_usd[row]
    index = np.array([closes[history.column(u)] for u in book.instruments.underlyings])
    prices = book.assets.price_usd.copy()
    for k, symbol in enumerate(book.assets.symbols):
        if history.has(symbol):
            prices[k] = closes[history.column(symbol)]
    end_of_day_ns = (int(day.astype("datetime64[D]").astype(np.int64)) + 1) * NS_PER_DAY
    # Marks follow the index (perpetuals and spot): a mark fixed in the book file would go stale.
    market = dataclasses.replace(
        loaded.market,
        valuation_ns=end_of_day_ns,
        index_price_usd=index,
        mark_price=np.full(book.instruments.n_instruments, np.nan),
    )
    return dataclasses.replace(book, assets=book.assets.with_prices(prices)), market


def backtest_days(
    history: PriceHistory, symbols: Sequence[str], *, first_day: str, last_day: str, horizon_days: int
) -> npt.NDArray[np.int64]:
    """Rows t of `history` in [first_day, last_day] with every symbol priced at t and at t + h days
    (the calendar is daily, so t + h is row t + h when both are present)."""
    sub = history.select(symbols)
    ok = np.all(np.isfinite(sub.close_usd), axis=1)
    rows = np.flatnonzero(
        (history.days >= np.datetime64(first_day, "D")) & (history.days <= np.datetime64(last_day, "D"))
    )
    rows = rows[rows + horizon_days < history.n_days]
    later = rows + horizon_days
    keep = (
        ok[rows] & ok[later] & (history.days[later] - history.days[rows] == np.timedelta64(horizon_days, "D"))
    )
    result: npt.NDArray[np.int64] = rows[keep].astype(np.int64)
    return result


MAX_HORIZON_DAYS = 30  # the VaR models' own bound (VarParams.horizon_days)


def _day(text: str, field_name: str) -> np.datetime64:
    try:
        return np.datetime64(date.fromisoformat(text), "D")
    except (TypeError, ValueError) as error:
        raise InputError(field_name, f"{text!r} is not a day (YYYY-MM-DD): {error}") from None


def _check_window(
    first_day: str, last_day: str, *, horizon_days: int, coverage: float
) -> tuple[np.datetime64, np.datetime64]:
    """The back-test's own arguments, each refused with its name: days that parse, first <= last,
    1 <= horizon <= 30 days, 0 < coverage < 1."""
    first = _day(first_day, "backtest.first_day")
    last = _day(last_day, "backtest.last_day")
    if first > last:
        raise InputError("backtest.first_day", f"{first_day} is after the last day {last_day}")
    if not 1 <= horizon_days <= MAX_HORIZON_DAYS:
        raise InputError(
            "backtest.horizon_days", f"must be in 1..{MAX_HORIZON_DAYS} days, got {horizon_days}"
        )
    if not 0.0 < coverage < 1.0:
        raise InputError("backtest.coverage", f"must lie in (0, 1), e.g. 0.99; got {coverage!r}")
    return first, last


def run_backtest(
    loaded: LoadedBook,
    models: Sequence[str],
    *,
    history: PriceHistorySource,
    volatility: VolatilityFilter | None = None,
    first_day: str,
    last_day: str,
    horizon_days: int = 2,
    coverage: float = 0.99,
    account_ids: Sequence[str] | None = None,
    progress: Callable[[int, int], None] | None = None,
) -> BacktestRun:
    """Walk [first_day, last_day] of `history`'s daily closes (the prices each day and the VaR
    models' history); `volatility` for GARCH presets; `progress(done, total)` after each day."""
    first, last = _check_window(first_day, last_day, horizon_days=horizon_days, coverage=coverage)
    daily = history.price_history()  # (T days, N symbols) closes, USD
    if first > daily.days[-1] or last < daily.days[0]:
        raise InputError(
            "backtest.first_day",
            f"{first_day}..{last_day} is outside the price history ({daily.days[0]}..{daily.days[-1]})",
        )
    book = (
        loaded.book
        if account_ids is None
        else loaded.book.select([loaded.book.account_row(a) for a in account_ids])
    )
    _check_backtest_book(book)
    loaded = dataclasses.replace(loaded, book=book)
    symbols = list(book.instruments.underlyings) + [s for s in book.assets.symbols if daily.has(s)]
    for u in book.instruments.underlyings:
        daily.column(u)  # an underlying without history cannot be back-tested
    rows = backtest_days(daily, symbols, first_day=first_day, last_day=last_day, horizon_days=horizon_days)
    if rows.size == 0:
        raise InputError(
            "backtest",
            f"no day in {first_day}..{last_day} with prices of {', '.join(dict.fromkeys(symbols))}",
        )
    specs = [ModelSpec.parse(m) for m in models]
    choices: list[ModelChoice] = [
        make_model(s.model, loaded, s.preset, history=history, volatility=volatility) for s in specs
    ]
    n_days = rows.size
    n_accounts = book.n_accounts
    margin = np.zeros((len(specs), n_accounts, n_days))
    equity_now = np.zeros((n_accounts, n_days))
    equity_later = np.zeros((n_accounts, n_days))
    equity_model = CrossMargin(loaded.params)
    for n, row in enumerate(rows.tolist()):  # one risk cycle per day: the walk is sequential
        day = daily.days[row]
        priced_book, market = _priced(loaded, book, daily, row, day)
        equity_now[:, n] = equity_model.evaluate(priced_book, market).equity_usd
        later_book, later_market = _priced(
            loaded, book, daily, row + horizon_days, daily.days[row + horizon_days]
        )
        equity_later[:, n] = equity_model.evaluate(later_book, later_market).equity_usd
        for m, choice in enumerate(choices):
            model_book = dataclasses.replace(choice.book, assets=priced_book.assets)
            valuation = revalue(model_book.instruments, market)
            margin[m, :, n] = choice.model.evaluate(model_book, market, valuation).initial_margin_usd
        if progress is not None:
            progress(n + 1, n_days)
    loss = equity_now - equity_later
    series = tuple(
        BacktestSeries(
            account_id=book.account_ids[a],
            model=spec.label,
            margin_usd=margin[m, a],
            loss_usd=loss[a],
            stats=backtest_stats(margin[m, a], loss[a], coverage=coverage),
        )
        for a in range(n_accounts)
        for m, spec in enumerate(specs)
    )
    return BacktestRun(
        book=loaded.path,
        days=daily.days[rows],
        horizon_days=horizon_days,
        coverage=coverage,
        models=tuple(s.label for s in specs),
        account_ids=book.account_ids,
        series=series,
    )


def backtest_table(run: BacktestRun) -> list[dict[str, Any]]:
    """One JSON-ready row per (account, model)."""
    rows: list[dict[str, Any]] = []
    for s in run.series:
        st = s.stats
        rows.append(
            {
                "account_id": s.account_id,
                "model": s.model,
                "days": st.days,
                "exceedances": st.exceedances,
                "exceedance_rate": st.exceedance_rate,
                "expected_rate": st.expected_rate,
                "kupiec_statistic": st.kupiec_statistic,
                "kupiec_p_value": st.kupiec_p_value,
                "christoffersen_statistic": st.christoffersen_statistic,
                "christoffersen_p_value": st.christoffersen_p_value,
                "worst_shortfall_usd": st.worst_shortfall_usd,
                "mean_margin_usd": st.mean_margin_usd,
                "largest_5d_increase": st.largest_5d_increase,
                "largest_30d_increase": st.largest_30d_increase,
                "peak_to_trough": st.peak_to_trough,
            }
        )
    return rows

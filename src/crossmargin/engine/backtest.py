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
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import date
from typing import Any

import numba
import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.margin import CrossMargin
from crossmargin.core.market import MarketState
from crossmargin.core.var.backtest import BacktestStats, backtest_stats
from crossmargin.core.var.history import NS_PER_DAY, PriceHistory
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.margin_run import ModelChoice, make_model
from crossmargin.engine.ports import PriceHistorySource, VolatilityFilter
from crossmargin.engine.risk_engine import RiskEngine
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
    """One account under one model: margin required and realised h-day loss per day, USD (T,),
    over the account's own days."""

    account_id: str
    model: str
    margin_usd: FloatArray
    loss_usd: FloatArray
    stats: BacktestStats
    days: npt.NDArray[np.datetime64]  # (T,): this account's days (its symbols' history)

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
    skipped: tuple[tuple[str, str], ...] = ()  # (account, why): no day of its history in the window

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


def _day_market(loaded: LoadedBook, book: Book, history: PriceHistory, row: int) -> MarketState:
    """The market at day `row`'s closes, valued at the end of that day (collateral assets without
    history keep the book's price: stablecoins, fiat)."""
    closes = history.close_usd[row]
    index = np.array([closes[history.column(u)] for u in book.instruments.underlyings])
    prices = loaded.market.asset_prices(book.assets).copy()
    for k, symbol in enumerate(book.assets.symbols):
        if history.has(symbol):
            prices[k] = closes[history.column(symbol)]
    end_of_day_ns = (int(history.days[row].astype("datetime64[D]").astype(np.int64)) + 1) * NS_PER_DAY
    # Marks follow the index (perpetuals and spot): a mark fixed in the book file would go stale.
    market = dataclasses.replace(
        loaded.market,
        valuation_ns=end_of_day_ns,
        index_price_usd=index,
        mark_price=np.full(book.instruments.n_instruments, np.nan),
        asset_price_usd=prices,
    )
    return market


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


def held_only(loaded: LoadedBook) -> LoadedBook:
    """The book and market restricted to the instruments its positions hold (and their
    underlyings): an account's walk needs the history of what it holds, not of every instrument
    the book lists (SOL starts 2020-04-10; a BTC portfolio's walk reaches back before it).

    An underlying that is also a collateral asset the accounts hold stays an underlying (BTC
    collateral behind SOL and ETH perps): the portfolio-margin grids shock collateral through
    its underlying's scenarios, so dropping it would leave that collateral unshocked."""
    book = loaded.book
    table = book.instruments
    held = np.unique(book.positions.indices).astype(np.int64)
    old_u = table.underlying_index[held]
    held_assets = {book.assets.symbols[k] for k in np.flatnonzero(np.any(book.balances != 0.0, axis=0))}
    collateral_u = [u for u, symbol in enumerate(table.underlyings) if symbol in held_assets]
    kept_u = np.union1d(old_u, np.asarray(collateral_u, dtype=np.int64)).astype(np.int64)
    new_u = np.searchsorted(kept_u, old_u)
    n_held = held.size
    instruments = dataclasses.replace(
        table,
        ids=tuple(table.ids[i] for i in held.tolist()),
        underlyings=tuple(table.underlyings[u] for u in kept_u.tolist()),
        kind=table.kind[held],
        settlement=table.settlement[held],
        option_sign=table.option_sign[held],
        underlying_index=new_u.astype(np.int64),
        contract_size=table.contract_size[held],
        strike=table.strike[held],
        expiry_ns=table.expiry_ns[held],
        rate_per_unit=table.rate_per_unit[held],
        tier_floor_usd=table.tier_floor_usd[held],
        tier_initial_rate=table.tier_initial_rate[held],
        tier_maintenance_rate=table.tier_maintenance_rate[held],
        tier_initial_deduction_usd=table.tier_initial_deduction_usd[held],
        tier_maintenance_deduction_usd=table.tier_maintenance_deduction_usd[held],
        index={table.ids[i]: n for n, i in enumerate(held.tolist())},
    )
    market = loaded.market
    per_instrument = {
        name: getattr(market, name)[held]
        for name in ("mark_price", "implied_vol", "forward_price_usd", "funding_rate_8h")
    }
    new_market = dataclasses.replace(
        market,
        underlyings=instruments.underlyings,
        index_price_usd=market.index_price_usd[kept_u],
        **per_instrument,
    )
    column = np.full(table.n_instruments, -1, dtype=np.int64)
    column[held] = np.arange(n_held)
    new_book = Book.from_arrays(
        account_ids=book.account_ids,
        assets=book.assets,
        instruments=instruments,
        account_index=book.position_account,
        instrument_index=column[book.positions.indices],
        quantity=book.positions.data,
        entry_price=book.entry_price,
        balances=book.balances,
    )
    return dataclasses.replace(loaded, book=new_book, market=new_market)


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
    models' history), each account over the days its own symbols have: the underlyings it trades
    and the assets of the book (`held_only`; VaR models also need `VAR_WARMUP_DAYS` of history
    before a day). `volatility` for GARCH presets; `progress(done, total)` after each account-day."""
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
    specs = [ModelSpec.parse(m) for m in models]
    walks = []
    for row in range(book.n_accounts):  # a handful of representative portfolios
        account = held_only(dataclasses.replace(loaded, book=book.select([row])))
        walks.append(_account_days(account, daily, specs, first_day, last_day, horizon_days))
    skipped = tuple(
        (a.book.account_ids[0], _no_days(a, daily, first_day, last_day))
        for a, rows in walks
        if rows.size == 0
    )
    walks = [(a, rows) for a, rows in walks if rows.size]
    if not walks:
        raise InputError("backtest", "; ".join(f"{name}: {reason}" for name, reason in skipped))
    total = sum(rows.size for _, rows in walks)
    done = 0
    series: list[BacktestSeries] = []
    for account, rows in walks:
        account_progress = None if progress is None else _offset_progress(progress, done, total)
        series.extend(
            _walk(account, rows, daily, specs, history, volatility, horizon_days, coverage, account_progress)
        )
        done += rows.size
    all_rows = np.unique(np.concatenate([rows for _, rows in walks]))
    return BacktestRun(
        book=loaded.path,
        days=daily.days[all_rows],
        horizon_days=horizon_days,
        coverage=coverage,
        models=tuple(s.label for s in specs),
        account_ids=tuple(a.book.account_ids[0] for a, _ in walks),
        series=tuple(series),
        skipped=skipped,
    )


def _offset_progress(progress: Callable[[int, int], None], done: int, total: int) -> Callable[[int], None]:
    """An account's day count as the run's: `done` days of earlier accounts before it."""
    return lambda n: progress(done + n, total)


# A VaR model needs half its window of joint daily returns before the first day it margins
# (VarMargin.current_moves); the longest preset window is 730 days.
VAR_WARMUP_DAYS = 366


def _account_days(
    account: LoadedBook,
    daily: PriceHistory,
    specs: Sequence[ModelSpec],
    first_day: str,
    last_day: str,
    horizon_days: int,
) -> tuple[LoadedBook, npt.NDArray[np.int64]]:
    """The rows of `daily` one account is walked over (its symbols priced at t and t + h; VaR:
    after VAR_WARMUP_DAYS of its symbols' joint history)."""
    book = account.book
    for u in book.instruments.underlyings:
        daily.column(u)  # an underlying without history cannot be back-tested
    symbols = account_symbols(book, daily)
    rows = backtest_days(daily, symbols, first_day=first_day, last_day=last_day, horizon_days=horizon_days)
    if any(s.model == "var" for s in specs) and rows.size:
        priced = np.flatnonzero(np.all(np.isfinite(daily.select(symbols).close_usd), axis=1))
        start = daily.days[int(priced[0])] + np.timedelta64(VAR_WARMUP_DAYS, "D")
        rows = rows[daily.days[rows] >= start]
    return account, rows


def _no_days(account: LoadedBook, daily: PriceHistory, first_day: str, last_day: str) -> str:
    symbols = account_symbols(account.book, daily)
    return f"no day in {first_day}..{last_day} with prices of {', '.join(symbols)}"


def account_symbols(book: Book, daily: PriceHistory) -> list[str]:
    """The symbols an account's walk needs a close of each day: the underlyings it trades (after
    `held_only`) and the book's collateral assets that have a history (stablecoins and fiat
    without one keep the book's price). Its walk starts at the latest first close among them."""
    assets = (s for s in book.assets.symbols if daily.has(s))
    return list(dict.fromkeys([*book.instruments.underlyings, *assets]))


def _walk(
    account: LoadedBook,
    rows: npt.NDArray[np.int64],
    daily: PriceHistory,
    specs: Sequence[ModelSpec],
    history: PriceHistorySource,
    volatility: VolatilityFilter | None,
    horizon_days: int,
    coverage: float,
    progress: Callable[[int], None] | None = None,
) -> list[BacktestSeries]:
    """One account day by day (one risk cycle per day: the walk is sequential).

    Equity is priced once per distinct day (t and t + h): equity(t + h) is the equity of a later
    day t' = t + h of the walk, so consecutive days share it. The day's work is one account of a
    few positions (a few thousand scenarios at most), smaller than the fork/join of numba's
    parallel kernels: the walk runs them on one thread (`one_numba_thread`)."""
    book = account.book
    choices: list[ModelChoice] = [
        make_model(s.model, account, s.preset, history=history, volatility=volatility) for s in specs
    ]
    n_days = rows.size
    margin = np.zeros((len(specs), n_days))
    priced = np.unique(np.concatenate([rows, rows + horizon_days]))
    equity_usd = np.zeros(priced.size)  # equity at each day's closes, end of day
    # One long-lived engine per model (and one for equity), moved from day to day: the walk is a
    # use of the engine, each day one market update (the valuation time moves, so each update is a
    # full re-margin; the book's price-independent structures are prepared once).
    first_market = _day_market(account, book, daily, int(rows[0]))
    with one_numba_thread():
        equity = RiskEngine(book, first_market, CrossMargin(account.params))
        for n, row in enumerate(priced.tolist()):
            equity.on_market(_day_market(account, book, daily, row))
            equity_usd[n] = equity.result.equity_usd[0]
        engines = [RiskEngine(choice.book, first_market, choice.model) for choice in choices]
        for n, row in enumerate(rows.tolist()):
            market = _day_market(account, book, daily, row)
            for m, engine in enumerate(engines):
                engine.on_market(market)
                margin[m, n] = engine.result.initial_margin_usd[0]
            if progress is not None:
                progress(n + 1)
    loss = (
        equity_usd[np.searchsorted(priced, rows)] - equity_usd[np.searchsorted(priced, rows + horizon_days)]
    )
    days = daily.days[rows]
    return [
        BacktestSeries(
            account_id=book.account_ids[0],
            model=spec.label,
            margin_usd=margin[m],
            loss_usd=loss,
            stats=backtest_stats(margin[m], loss, coverage=coverage),
            days=days,
        )
        for m, spec in enumerate(specs)
    ]


@contextmanager
def one_numba_thread() -> Iterator[None]:
    """numba's parallel kernels on the calling thread only, for the block (restored after; the
    setting is per thread: https://numba.readthedocs.io/en/stable/user/threading-layer.html)."""
    before = numba.get_num_threads()
    numba.set_num_threads(1)
    try:
        yield
    finally:
        numba.set_num_threads(before)


@dataclass(frozen=True, slots=True)
class PeriodResult:
    """One series over a stress period: the days t of the walk whose h-day loss window
    (t, t + h] holds a day of [first_day, last_day] (t from first_day - h to last_day - 1).
    USD; `worst_day` is the day of the largest realised loss, `margin_usd` the margin that day."""

    days: int
    exceedances: int
    worst_day: np.datetime64
    worst_loss_usd: float
    margin_usd: float
    worst_shortfall_usd: float  # max(loss - margin, 0) over the period's days

    @property
    def exceeded(self) -> bool:
        return self.exceedances > 0


def period_result(
    series: BacktestSeries, first_day: str, last_day: str, *, horizon_days: int
) -> PeriodResult | None:
    """`series` over the loss windows that overlap [first_day, last_day] (None: the walk has
    no such day, e.g. the account's history starts after it)."""
    first, last = _day(first_day, "period.first_day"), _day(last_day, "period.last_day")
    inside = np.flatnonzero((series.days >= first - np.timedelta64(horizon_days, "D")) & (series.days < last))
    if inside.size == 0:
        return None
    loss, margin = series.loss_usd[inside], series.margin_usd[inside]
    worst = int(np.argmax(loss))
    return PeriodResult(
        days=int(inside.size),
        exceedances=int(np.sum(loss > margin)),
        worst_day=series.days[inside[worst]],
        worst_loss_usd=float(loss[worst]),
        margin_usd=float(margin[worst]),
        worst_shortfall_usd=float(np.max(np.maximum(loss - margin, 0.0))),
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

"""One margin run over a loaded book, and its report (typed, `engine.reports`) as JSON-ready data.

Two stages, each costing what it costs in plain sight:
    run_margin(loaded)            the margin of every account (one evaluation of the book)
    price_levels(run)             liquidation and bankruptcy prices: a root search per underlying,
                                  each trial price a full evaluation of the requested accounts
                                  (portfolio margin: ~160 evaluations, ~100x the margin itself)
    margin_report(run, levels=)   the report; the six level keys only when `levels` is given

The report keys are a contract (later tools rely on them):
{"model", "preset", "valuation_time", "book", "accounts": [{"account_id", "equity_usd",
 "initial_margin_usd", "maintenance_margin_usd", "available_usd", "margin_ratio" (null when
 bankrupt), "bankrupt", "below_maintenance", "collateral_value_usd",
 "positions": [{"instrument_id", "quantity", "entry_price", "value_usd", "unrealised_pnl_usd",
                "initial_margin_usd", "maintenance_margin_usd"[, "isolated_equity_usd"]}],
 "collateral": [{"asset", "balance", "value_usd", "haircut"}]
 [, "liquidation_price", "bankruptcy_price",
  "liquidation_price_below", "liquidation_price_above",
  "bankruptcy_price_below", "bankruptcy_price_above": {underlying: USD index price or null}]}]}

Liquidation prices follow the run's model (equity = that model's MM; cross MM for the cross and
isolated models and for runs that do not carry their model, e.g. oracle-priced runs); bankruptcy
prices (equity = 0) are model-independent.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, TypeVar

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin import (
    Breakdown,
    CrossMargin,
    CrossParams,
    IsolatedMargin,
    MarginModel,
    MarginResult,
)
from crossmargin.core.margin.presets import portfolio_preset
from crossmargin.core.margin.tier_presets import scheduled
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import (
    FundingSource,
    OpenInterestSource,
    PriceHistorySource,
    VolatilityFilter,
)
from crossmargin.engine.report_columns import margin_columns
from crossmargin.engine.reports import (
    AccountPriceLevels,
    AccountReport,
    CollateralReport,
    MarginReport,
    PositionReport,
    to_json,
)
from crossmargin.engine.risk_engine import RiskEngine
from crossmargin.errors import InputError

if TYPE_CHECKING:  # imported where used: a margin run loads only its own model's modules
    from crossmargin.core.liquidation.prices import PriceLevels
    from crossmargin.core.margin.crowding import CrowdedMargin

MODELS = ("cross", "isolated", "portfolio", "sensitivity", "var")

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class ModelChoice:
    """A margin model and the book it runs on (a tier preset rewrites the perps' schedules)."""

    name: str
    preset: str | None
    model: MarginModel
    book: Book


def make_model(
    name: str,
    loaded: LoadedBook,
    preset: str | None = None,
    *,
    history: PriceHistorySource | None = None,
    volatility: VolatilityFilter | None = None,
    max_history_gap_days: int | None = None,
) -> ModelChoice:
    """cross | isolated (preset: a tier table, binance | hyperliquid), portfolio (preset: a
    portfolio methodology, the book's model.portfolio overrides kept on top of it; default the
    book's model.portfolio), sensitivity (SIMM-style) or var
    (preset: a VAR_PRESETS name, over `history`'s daily closes; `volatility` for GARCH presets).
    Only var reads `history`, `volatility` and `max_history_gap_days` (how stale its window may be);
    without a history it is an InputError("history")."""
    if name in ("cross", "isolated"):
        tier = preset if preset is not None else loaded.tier_preset
        cross = dataclasses.replace(loaded.params, tier_preset=tier)  # a model parameter, not a new book
        model: MarginModel = CrossMargin(cross) if name == "cross" else IsolatedMargin(cross)
        return ModelChoice(name=name, preset=tier, model=model, book=loaded.book)
    if name == "portfolio":
        from crossmargin.core.margin.portfolio import PortfolioMargin

        # The flag names a preset and nothing else: the book's explicit overrides (numeraire,
        # maintenance fraction, add-ons) apply on top of whichever preset runs.
        params = loaded.portfolio
        if preset is not None:
            params = loaded.portfolio_overrides.apply(portfolio_preset(preset))
        return ModelChoice(name=name, preset=params.name, model=PortfolioMargin(params), book=loaded.book)
    if name == "sensitivity":
        if preset is not None:  # one methodology, no presets: a flag that would be ignored is refused
            raise InputError("preset", f"the sensitivity model has no presets, got {preset!r}")
        from crossmargin.core.margin.sensitivity import SensitivityMargin

        return ModelChoice(name=name, preset=None, model=SensitivityMargin(), book=loaded.book)
    if name == "var":  # VaR/ES over the caller's price history (preset: a VAR_PRESETS name)
        from crossmargin.engine.var_run import var_model

        var = var_model(
            preset, history=history, volatility=volatility, max_history_gap_days=max_history_gap_days
        )
        return ModelChoice(name=name, preset=var.params.name, model=var, book=loaded.book)
    raise InputError("model", f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


@dataclass(frozen=True, slots=True, kw_only=True)
class CrowdingHistory:
    """The market's crowding signals for `--crowding` (engine.crowding_run): daily open interest
    and funding; a source left None (or without the symbol, or stopping before the valuation
    day) makes that signal unknown, and the add-on runs on the book's own signals."""

    open_interest: OpenInterestSource | None = None
    funding: FundingSource | None = None


@dataclass(frozen=True, slots=True)
class MarginRun:
    loaded: LoadedBook
    model: str
    result: MarginResult
    breakdown: Breakdown
    preset: str | None = None
    margin_model: MarginModel | None = None  # the model and book the run used (liquidation prices)
    model_book: Book | None = None
    crowding_addon_usd: FloatArray | None = None  # (A,) IM add-on of a --crowding run, USD


def run_margin(
    loaded: LoadedBook,
    *,
    model: str | None = None,
    preset: str | None = None,
    account_ids: Sequence[str] | None = None,
    history: PriceHistorySource | None = None,
    volatility: VolatilityFilter | None = None,
    max_history_gap_days: int | None = None,
    crowding: CrowdingHistory | None = None,
) -> MarginRun:
    """Evaluate the whole book, then break down the requested accounts (all by default).
    `history` and `volatility`: the VaR model's inputs (`make_model`), unused by the others.
    `crowding`: add the crowding add-on (core.margin.crowding) to the chosen pooled model, its
    state measured on the whole book with the history signals known at the valuation time; the
    run's model is then `<model>+crowding` and `crowding_addon_usd` holds each account's add-on."""
    choice = make_model(
        model or loaded.default_model,
        loaded,
        preset,
        history=history,
        volatility=volatility,
        max_history_gap_days=max_history_gap_days,
    )
    book = choice.book
    chosen: MarginModel = choice.model
    name = choice.name
    crowded = None if crowding is None else _crowded(choice, loaded, crowding)
    if crowded is not None:
        chosen = crowded
        name = f"{choice.name}+crowding"
    # A file run is one use of the long-lived engine: built, asked once, dropped.
    engine = RiskEngine(book, loaded.market, chosen)
    result = engine.result
    breakdown = engine.breakdown(account_ids)
    addon = None
    if crowded is not None and crowded.state is not None:
        from crossmargin.core.margin.crowding import crowding_addon_usd

        addon = crowding_addon_usd(book, engine.valuation, crowded.state, crowded.params)
    return MarginRun(
        loaded=loaded,
        model=name,
        result=result,
        breakdown=breakdown,
        preset=choice.preset,
        margin_model=chosen,
        model_book=book,
        crowding_addon_usd=addon,
    )


def _crowded(choice: ModelChoice, loaded: LoadedBook, crowding: CrowdingHistory) -> CrowdedMargin:
    """The chosen model plus the crowding add-on, or an InputError naming why it cannot take one."""
    if choice.name == "isolated":
        raise InputError(
            "--crowding",
            "the crowding add-on is for pooled models (cross, portfolio, sensitivity, var): "
            "isolated margin has no account-wide pool to add it to",
        )
    from crossmargin.engine.crowding_run import crowded_model

    return crowded_model(
        choice.model,
        choice.book,
        loaded.market,
        open_interest=crowding.open_interest,
        funding=crowding.funding,
    )


def price_levels(run: MarginRun) -> PriceLevels:
    """Per broken-down account and underlying: the index price at which equity falls to the run's
    model MM (liquidation) or to 0 (bankruptcy), every other price fixed (module docstring).

    An explicit stage, not part of `run_margin`: a root search whose trial prices each cost an
    evaluation of the requested accounts (cross/isolated: one vectorised pass per grid step;
    portfolio, sensitivity, VaR: their own MM re-evaluated, ~160 evaluations on the desk book).
    Pass the result to `margin_report(run, levels=...)`."""
    from crossmargin.core.liquidation.model_prices import model_price_levels
    from crossmargin.core.liquidation.prices import cross_price_levels

    rows = run.breakdown.account_rows
    market = run.loaded.market
    if run.margin_model is None or run.model_book is None or run.model in ("cross", "isolated"):
        book = run.model_book if run.model_book is not None else run.loaded.book
        params = getattr(run.margin_model, "params", None)
        if isinstance(params, CrossParams):  # the run's tier preset, a model parameter
            book = scheduled(book, params.tier_preset)
        return cross_price_levels(book, market, option_params=run.loaded.params.option_margin, rows=rows)
    return model_price_levels(run.margin_model, run.model_book, market, rows=rows)


def finite_or_none(values: FloatArray) -> list[Any]:
    """`values.tolist()` with every non-finite entry None (JSON null), any shape, in one pass."""
    out = values.astype(object)
    out[~np.isfinite(values)] = None
    listed: list[Any] = out.tolist()
    return listed


def account_price_levels(levels: PriceLevels) -> list[AccountPriceLevels]:
    """One `AccountPriceLevels` per row of `levels`, columnar: each (R, U) array is turned into
    per-underlying dicts once (NaN → None), no per-account array access."""
    names = levels.underlyings

    def per_underlying(prices: FloatArray) -> list[dict[str, float | None]]:
        return [dict(zip(names, row, strict=True)) for row in finite_or_none(prices)]

    return [
        AccountPriceLevels(
            liquidation_price=liquidation,
            bankruptcy_price=bankruptcy,
            liquidation_price_below=liquidation_below,
            liquidation_price_above=liquidation_above,
            bankruptcy_price_below=bankruptcy_below,
            bankruptcy_price_above=bankruptcy_above,
        )
        for (
            liquidation,
            bankruptcy,
            liquidation_below,
            liquidation_above,
            bankruptcy_below,
            bankruptcy_above,
        ) in zip(
            per_underlying(levels.liquidation_price),
            per_underlying(levels.bankruptcy_price),
            per_underlying(levels.liquidation_below),
            per_underlying(levels.liquidation_above),
            per_underlying(levels.bankruptcy_below),
            per_underlying(levels.bankruptcy_above),
            strict=True,
        )
    ]


def _split(items: list[T], counts: IntArray) -> list[tuple[T, ...]]:
    """`items` stored group after group, `counts[n]` in group n → one tuple per group."""
    ends = np.cumsum(counts).tolist()
    starts = [0, *ends[:-1]]
    return [tuple(items[start:end]) for start, end in zip(starts, ends, strict=True)]


def build_margin_report(run: MarginRun, *, levels: PriceLevels | None = None) -> MarginReport:
    """The typed report of the broken-down accounts: the rows of `margin_columns(run)` (every
    column turned into Python values once, `tolist`, then zipped), so it holds exactly what the
    columnar writers write.

    `levels` (from `price_levels(run)`) adds each account's liquidation and bankruptcy prices;
    it must cover the same account rows as the run's breakdown."""
    if levels is not None and not np.array_equal(levels.account_rows, run.breakdown.account_rows):
        raise InputError("levels", "price levels are for other accounts than the run's breakdown")
    columns = margin_columns(run)
    p = columns.positions
    instrument_ids = np.asarray(columns.instrument_ids, dtype=object)[p.instrument].tolist()
    isolated_equity: list[float | None] = (
        [None] * len(instrument_ids) if p.isolated_equity_usd is None else p.isolated_equity_usd.tolist()
    )
    positions = [
        PositionReport(
            instrument_id=instrument_id,
            quantity=quantity,
            entry_price=entry_price,
            value_usd=value,
            unrealised_pnl_usd=pnl,
            initial_margin_usd=initial,
            maintenance_margin_usd=maintenance,
            isolated_equity_usd=equity,
        )
        for instrument_id, quantity, entry_price, value, pnl, initial, maintenance, equity in zip(
            instrument_ids,
            p.quantity.tolist(),
            p.entry_price.tolist(),
            p.value_usd.tolist(),
            p.unrealised_pnl_usd.tolist(),
            p.initial_margin_usd.tolist(),
            p.maintenance_margin_usd.tolist(),
            isolated_equity,
            strict=True,
        )
    ]
    a = columns.accounts
    positions_of = _split(positions, a.position_count)
    c = columns.collateral
    collateral = [
        CollateralReport(asset=asset, balance=balance, value_usd=value, haircut=haircut)
        for asset, balance, value, haircut in zip(
            np.asarray(columns.asset_symbols, dtype=object)[c.asset].tolist(),
            c.balance.tolist(),
            c.value_usd.tolist(),
            c.haircut.tolist(),
            strict=True,
        )
    ]
    collateral_of = _split(collateral, a.collateral_count)
    levels_of: list[AccountPriceLevels | None] = (
        [None] * a.n_accounts if levels is None else list(account_price_levels(levels))
    )
    accounts = tuple(
        AccountReport(
            account_id=account_id,
            equity_usd=equity,
            initial_margin_usd=initial,
            maintenance_margin_usd=maintenance,
            available_usd=available,
            margin_ratio=margin_ratio,
            bankrupt=bankrupt,
            below_maintenance=below,
            collateral_value_usd=collateral_value,
            positions=account_positions,
            collateral=account_collateral,
            levels=account_levels,
        )
        for (
            account_id,
            equity,
            initial,
            maintenance,
            available,
            margin_ratio,
            bankrupt,
            below,
            collateral_value,
            account_positions,
            account_collateral,
            account_levels,
        ) in zip(
            list(a.account_id),
            a.equity_usd.tolist(),
            a.initial_margin_usd.tolist(),
            a.maintenance_margin_usd.tolist(),
            a.available_usd.tolist(),
            finite_or_none(a.margin_ratio),
            a.bankrupt.tolist(),
            a.below_maintenance.tolist(),
            a.collateral_value_usd.tolist(),
            positions_of,
            collateral_of,
            levels_of,
            strict=True,
        )
    )
    return MarginReport(
        model=columns.model,
        preset=columns.preset,
        valuation_time=columns.valuation_time,
        book=columns.book,
        accounts=accounts,
    )


def margin_report(run: MarginRun, *, levels: PriceLevels | None = None) -> dict[str, Any]:
    """The JSON report (module docstring) of the broken-down accounts: `to_json` of
    `build_margin_report`. The six level keys only when `levels` (`price_levels(run)`) is given."""
    from crossmargin.core.margin.crowding import CrowdedMargin
    from crossmargin.core.margin.var import VarMargin
    from crossmargin.engine.var_run import history_report

    report: dict[str, Any] = to_json(build_margin_report(run, levels=levels))
    model = run.margin_model.base if isinstance(run.margin_model, CrowdedMargin) else run.margin_model
    if isinstance(model, VarMargin) and run.model_book is not None:  # how stale the window is
        report["var_history"] = history_report(model, run.model_book, run.loaded.market.valuation_ns)
    if run.crowding_addon_usd is not None and isinstance(run.margin_model, CrowdedMargin):
        addon = run.crowding_addon_usd[run.breakdown.account_rows].tolist()
        for entry, value in zip(report["accounts"], addon, strict=True):
            entry["crowding_addon_usd"] = value
        report["crowding"] = crowding_block(run.margin_model)
    return report


def crowding_block(model: CrowdedMargin) -> dict[str, Any]:
    """Per underlying, the crowding the add-on was priced on: each side's score in [0, 1] and the
    signals behind it (imbalance, each side's Herfindahl concentration, annualised funding and
    open interest over its trailing mean; null = unknown)."""
    state = model.state
    if state is None:
        return {}
    out: dict[str, Any] = {}
    for u, symbol in enumerate(state.underlyings):
        out[symbol] = to_json(
            {
                "score_long": float(state.score_long[u]),
                "score_short": float(state.score_short[u]),
                "imbalance": float(state.imbalance[u]),
                "concentration_long": float(state.concentration_long[u]),
                "concentration_short": float(state.concentration_short[u]),
                "funding_apr": float(state.funding_apr[u]),
                "open_interest_ratio": float(state.open_interest_ratio[u]),
            }
        )
    return out

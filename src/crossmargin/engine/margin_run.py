"""One margin run over a loaded book, and its report as plain JSON-ready data.

The report keys are a contract (later tools rely on them):
{"model", "preset", "valuation_time", "book", "accounts": [{"account_id", "equity_usd",
 "initial_margin_usd", "maintenance_margin_usd", "available_usd", "margin_ratio" (null when
 bankrupt), "bankrupt", "below_maintenance", "collateral_value_usd",
 "positions": [{"instrument_id", "quantity", "entry_price", "value_usd", "unrealised_pnl_usd",
                "initial_margin_usd", "maintenance_margin_usd"[, "isolated_equity_usd"]}],
 "collateral": [{"asset", "balance", "value_usd", "haircut"}],
 "liquidation_price", "bankruptcy_price",
 "liquidation_price_below", "liquidation_price_above",
 "bankruptcy_price_below", "bankruptcy_price_above": {underlying: USD index price or null}}]}

Liquidation prices follow the run's model (equity = that model's MM; cross MM for the cross and
isolated models and for runs that do not carry their model, e.g. oracle-priced runs); bankruptcy
prices (equity = 0) are model-independent.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import numpy as np

from crossmargin.core.book import Book
from crossmargin.core.liquidation.model_prices import model_price_levels
from crossmargin.core.liquidation.prices import PriceLevels, cross_price_levels
from crossmargin.core.margin import Breakdown, CrossMargin, IsolatedMargin, MarginModel, MarginResult
from crossmargin.core.margin.portfolio import PortfolioMargin
from crossmargin.core.margin.presets import portfolio_preset, with_tier_preset
from crossmargin.core.margin.sensitivity import SensitivityMargin
from crossmargin.core.pricing import revalue
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import PriceHistorySource, VolatilityFilter
from crossmargin.engine.var_run import var_model
from crossmargin.errors import InputError

MODELS = ("cross", "isolated", "portfolio", "sensitivity", "var")


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
) -> ModelChoice:
    """cross | isolated (preset: a tier table, binance | hyperliquid), portfolio (preset: a
    portfolio methodology; default the book's model.portfolio), sensitivity (SIMM-style) or var
    (preset: a VAR_PRESETS name, over `history`'s daily closes; `volatility` for GARCH presets).
    Only var reads `history` and `volatility`; without a history it is an InputError("history")."""
    if name in ("cross", "isolated"):
        tier = preset if preset is not None else loaded.tier_preset
        book = loaded.book if tier is None else with_tier_preset(loaded.book, tier)
        model: MarginModel = CrossMargin(loaded.params) if name == "cross" else IsolatedMargin(loaded.params)
        return ModelChoice(name=name, preset=tier, model=model, book=book)
    if name == "portfolio":
        params = loaded.portfolio if preset is None else portfolio_preset(preset)
        return ModelChoice(name=name, preset=params.name, model=PortfolioMargin(params), book=loaded.book)
    if name == "sensitivity":
        return ModelChoice(name=name, preset=None, model=SensitivityMargin(), book=loaded.book)
    if name == "var":  # VaR/ES over the caller's price history (preset: a VAR_PRESETS name)
        var = var_model(preset, history=history, volatility=volatility)
        return ModelChoice(name=name, preset=var.params.name, model=var, book=loaded.book)
    raise InputError("model", f"unknown model {name!r}; choose one of {', '.join(MODELS)}")


@dataclass(frozen=True, slots=True)
class MarginRun:
    loaded: LoadedBook
    model: str
    result: MarginResult
    breakdown: Breakdown
    preset: str | None = None
    margin_model: MarginModel | None = None  # the model and book the run used (liquidation prices)
    model_book: Book | None = None


def run_margin(
    loaded: LoadedBook,
    *,
    model: str | None = None,
    preset: str | None = None,
    account_ids: Sequence[str] | None = None,
    history: PriceHistorySource | None = None,
    volatility: VolatilityFilter | None = None,
) -> MarginRun:
    """Evaluate the whole book, then break down the requested accounts (all by default).
    `history` and `volatility`: the VaR model's inputs (`make_model`), unused by the others."""
    choice = make_model(model or loaded.default_model, loaded, preset, history=history, volatility=volatility)
    book = choice.book
    valuation = revalue(book.instruments, loaded.market)
    result = choice.model.evaluate(book, loaded.market, valuation)
    rows = list(range(book.n_accounts)) if account_ids is None else [book.account_row(a) for a in account_ids]
    breakdown = choice.model.breakdown(book, loaded.market, rows, valuation)
    return MarginRun(
        loaded=loaded,
        model=choice.name,
        result=result,
        breakdown=breakdown,
        preset=choice.preset,
        margin_model=choice.model,
        model_book=book,
    )


def _number(value: float) -> float | None:
    return None if not math.isfinite(value) else float(value)


def price_levels(run: MarginRun) -> PriceLevels:
    """Per broken-down account and underlying: the index price at which equity falls to the run's
    model MM (liquidation) or to 0 (bankruptcy), every other price fixed (module docstring)."""
    rows = run.breakdown.account_rows
    market = run.loaded.market
    if run.margin_model is None or run.model_book is None or run.model in ("cross", "isolated"):
        book = run.model_book if run.model_book is not None else run.loaded.book
        return cross_price_levels(book, market, option_params=run.loaded.params.option_margin, rows=rows)
    return model_price_levels(run.margin_model, run.model_book, market, rows=rows)


def margin_report(run: MarginRun) -> dict[str, Any]:
    """The JSON report (module docstring) for the broken-down accounts."""
    book = run.loaded.book
    result = run.result
    bd = run.breakdown
    levels = price_levels(run)

    def per_underlying(prices: np.ndarray) -> dict[str, float | None]:
        return dict(zip(levels.underlyings, map(_number, prices.tolist()), strict=True))

    isolated = run.model == "isolated"
    accounts: list[dict[str, Any]] = []
    # The breakdown stores each requested account's positions contiguously, in request order.
    counts = np.diff(book.positions.indptr)[bd.account_rows]
    ends = np.cumsum(counts)
    for n, row in enumerate(bd.account_rows.tolist()):  # report formatting, not the risk path
        positions = []
        for p in range(int(ends[n] - counts[n]), int(ends[n])):
            item: dict[str, Any] = {
                "instrument_id": book.instruments.ids[int(bd.position_instrument[p])],
                "quantity": float(bd.quantity[p]),
                "entry_price": float(bd.entry_price[p]),
                "value_usd": float(bd.value_usd[p]),
                "unrealised_pnl_usd": float(bd.unrealised_pnl_usd[p]),
                "initial_margin_usd": float(bd.initial_margin_usd[p]),
                "maintenance_margin_usd": float(bd.maintenance_margin_usd[p]),
            }
            if isolated:
                item["isolated_equity_usd"] = float(bd.isolated_equity_usd[p])
            positions.append(item)
        collateral = [
            {
                "asset": symbol,
                "balance": float(bd.balance[n, k]),
                "value_usd": float(bd.collateral_value_usd[n, k]),
                "haircut": float(bd.haircut[n, k]),
            }
            for k, symbol in enumerate(book.assets.symbols)
            if bd.balance[n, k] != 0.0
        ]
        accounts.append(
            {
                "account_id": book.account_ids[row],
                "equity_usd": float(result.equity_usd[row]),
                "initial_margin_usd": float(result.initial_margin_usd[row]),
                "maintenance_margin_usd": float(result.maintenance_margin_usd[row]),
                "available_usd": float(result.available_usd[row]),
                "margin_ratio": _number(float(result.margin_ratio[row])),
                "bankrupt": bool(result.bankrupt[row]),
                "below_maintenance": bool(result.below_maintenance[row]),
                "collateral_value_usd": float(result.collateral_value_usd[row]),
                "positions": positions,
                "collateral": collateral,
                "liquidation_price": per_underlying(levels.liquidation_price[n]),
                "bankruptcy_price": per_underlying(levels.bankruptcy_price[n]),
                "liquidation_price_below": per_underlying(levels.liquidation_below[n]),
                "liquidation_price_above": per_underlying(levels.liquidation_above[n]),
                "bankruptcy_price_below": per_underlying(levels.bankruptcy_below[n]),
                "bankruptcy_price_above": per_underlying(levels.bankruptcy_above[n]),
            }
        )
    valuation_time = datetime.fromtimestamp(run.loaded.market.valuation_ns / 1e9, tz=UTC)
    return {
        "model": run.model,
        "preset": run.preset,
        "valuation_time": valuation_time.isoformat().replace("+00:00", "Z"),
        "book": run.loaded.path,
        "accounts": accounts,
    }

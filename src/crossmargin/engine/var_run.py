"""VaR/ES margin for the engine: the model over a price history the caller gives (a
`PriceHistorySource`, and a `VolatilityFilter` for presets that name GARCH), its explanation
(which scenarios make the tail, each position's and asset's component of ES).

explain JSON (model "var"): {"account_id", "model", "preset", "method", "measure", "confidence",
 "horizon_days", "initial_margin_usd", "maintenance_margin_usd", "var_usd", "es_usd",
 "binding_group", "group_weight", "groups": [{"group", "weight", "var_usd", "es_usd", "scenarios"}],
 "tail": [{"index", "label", "loss_usd", "price_moves"}],
 "positions": [{"instrument_id", "underlying", "quantity", "component_usd", "tail_mean_pnl_usd"}],
 "collateral": [{"asset", "balance", "value_usd", "component_usd", "tail_mean_pnl_usd"}],
 "per_underlying": {name: component_usd}}

Components are the Euler allocation of the binding measure (core/margin/var.py), so
Σ positions + Σ collateral = group_weight x measure.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np

from crossmargin.core.book import Book
from crossmargin.core.collateral import value_collateral
from crossmargin.core.margin.var import VarMargin, VarParams, explain_var_account, var_preset
from crossmargin.core.pricing import revalue
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.ports import PriceHistorySource, VolatilityFilter
from crossmargin.errors import InputError

DEFAULT_VAR_PRESET = "fhs-es975"


def history_report(model: VarMargin, book: Book, valuation_ns: int) -> dict[str, Any]:
    """The report's "var_history" block: how current the window is at the valuation time.
    {"factors", "last_day", "known_day", "gap_days", "warn_after_days", "limit_days", "stale"}."""
    window = model.history_window(model.moving_factors(book)[1], valuation_ns)
    return {
        "factors": list(window.factors),
        "last_day": str(window.last_day),
        "known_day": str(window.known_day),
        "gap_days": window.gap_days,
        "warn_after_days": window.warn_days,
        "limit_days": window.limit_days,
        "stale": window.stale,
    }


NO_HISTORY = "no price history was given: VaR/ES margin needs the daily closes of every risk factor"


def var_model(
    preset: str | None = None,
    *,
    params: VarParams | None = None,
    history: PriceHistorySource | None,
    volatility: VolatilityFilter | None = None,
    max_history_gap_days: int | None = None,
) -> VarMargin:
    """The VaR model of a preset (default fhs-es975) over `history`'s daily closes. `volatility`
    is used only by a preset whose filter is not the built-in EWMA (GARCH); such a preset without
    one fails when evaluated, naming var.volatility_filter. `max_history_gap_days` replaces the
    preset's limit on how stale the window may be (VarParams)."""
    chosen = params if params is not None else var_preset(preset or DEFAULT_VAR_PRESET)
    if max_history_gap_days is not None:
        warn = min(chosen.warn_history_gap_days, max_history_gap_days)
        chosen = dataclasses.replace(
            chosen, max_history_gap_days=max_history_gap_days, warn_history_gap_days=warn
        )
    if history is None:
        raise InputError("history", NO_HISTORY)
    external = volatility if chosen.volatility_filter != "ewma" else None
    return VarMargin(chosen, history.price_history(), external)


def explain_var_report(
    loaded: LoadedBook,
    account_id: str,
    *,
    preset: str | None = None,
    history: PriceHistorySource | None,
    volatility: VolatilityFilter | None = None,
) -> dict[str, Any]:
    """The explain JSON (module docstring) of one account under a VaR preset."""
    model = var_model(preset, history=history, volatility=volatility)
    book = loaded.book
    row = book.account_row(account_id)
    valuation = revalue(book.instruments, loaded.market)
    e = explain_var_account(model, book, loaded.market, row, valuation)
    scenarios = e.scenarios
    loss = -(e.position_pnl_usd.sum(axis=0) + e.collateral_pnl_usd.sum(axis=0))
    underlyings = book.instruments.underlyings
    u_of = book.instruments.underlying_index[e.position_instrument]
    per_underlying: dict[str, float] = {}
    for n, u in enumerate(underlyings):
        if np.any(u_of == n):
            per_underlying[u] = float(e.position_component_usd[u_of == n].sum())
    balances = book.balances[row]
    values = value_collateral(
        book.balances[row : row + 1], book.assets, loaded.market.asset_prices(book.assets)
    ).value_usd[0]
    for k, symbol in enumerate(book.assets.symbols):
        if balances[k] != 0.0:
            key = f"{symbol} (collateral)"
            per_underlying[key] = float(e.collateral_component_usd[k])
    tail_pnl_positions = e.position_pnl_usd[:, e.tail].mean(axis=1)
    tail_pnl_collateral = e.collateral_pnl_usd[:, e.tail].mean(axis=1)
    p = model.params
    return {
        "account_id": account_id,
        "model": "var",
        "preset": p.name,
        "method": p.method,
        "measure": p.measure,
        "confidence": p.confidence,
        "horizon_days": p.horizon_days,
        "initial_margin_usd": e.initial_margin_usd,
        "maintenance_margin_usd": e.maintenance_margin_usd,
        "var_usd": e.var_usd,
        "es_usd": e.es_usd,
        "binding_group": e.binding_group,
        "group_weight": e.group_weight,
        "groups": [
            {
                "group": "current" if g == 0 else "stressed",
                "weight": float(model.group_weights(scenarios)[g]),
                "var_usd": float(e.per_group_var_usd[g]),
                "es_usd": float(e.per_group_es_usd[g]),
                "scenarios": int(np.count_nonzero(scenarios.group == g)),
            }
            for g in range(scenarios.n_groups)
        ],
        "tail": [
            {
                "index": int(s),
                "label": scenarios.labels[int(s)],
                "loss_usd": float(loss[s]),
                "price_moves": {
                    f: float(scenarios.price_factor[s, n] - 1.0)
                    for n, f in enumerate(scenarios.factors)
                    if scenarios.price_factor[s, n] != 1.0
                },
            }
            for s in e.tail
        ],
        "positions": [
            {
                "instrument_id": book.instruments.ids[int(i)],
                "underlying": underlyings[int(book.instruments.underlying_index[i])],
                "quantity": float(q),
                "component_usd": float(e.position_component_usd[n]),
                "tail_mean_pnl_usd": float(tail_pnl_positions[n]),
            }
            for n, (i, q) in enumerate(zip(e.position_instrument, e.quantity, strict=True))
        ],
        "collateral": [
            {
                "asset": symbol,
                "balance": float(balances[k]),
                "value_usd": float(values[k]),
                "component_usd": float(e.collateral_component_usd[k]),
                "tail_mean_pnl_usd": float(tail_pnl_collateral[k]),
            }
            for k, symbol in enumerate(book.assets.symbols)
            if balances[k] != 0.0
        ],
        "per_underlying": per_underlying,
    }


# The VaR/ES rows `compare` adds when it is given a price history: HS VaR 99 %, FHS ES 97.5 %,
# MC ES 97.5 % (all EWMA-filtered or unfiltered: no external volatility filter needed).
COMPARE_PRESETS = ("hs-var99", "fhs-es975", "mc-es975")

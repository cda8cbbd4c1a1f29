"""Explain one account's portfolio requirement; compare one account across models and venues.

explain JSON: {"account_id", "model", "preset", "initial_margin_usd", "maintenance_margin_usd",
 "grid_usd", "min_delta_usd", "worst_scenario": {"index", "label", "weight", "price_moves",
 "total_pnl_usd"}, "groups": [{"label", "loss_usd"}], "positions": [{"instrument_id", "underlying",
 "quantity", "scenario_pnl_usd", "contribution_usd"}], "collateral": [{"asset", "value_usd",
 "scenario_pnl_usd", "contribution_usd"}], "per_underlying": {underlying: pnl_usd},
 "addons": {name: usd}, "scenarios": [{"label", "pnl_usd", "loss_usd"}]}

`scenario_pnl_usd` is the P&L in the worst scenario; `contribution_usd` is each item's share of
the grid requirement: its weighted loss in its group's worst scenario, summed over groups that
charge something, so positions + collateral - dampeners = grid_usd exactly.

compare JSON: {"account_id", "book", "rows": [{"model", "preset", "initial_margin_usd",
 "maintenance_margin_usd", "equity_usd", "saving_vs_isolated_usd", "saving_vs_isolated_pct"}]
 [, "skipped": [{"model", "presets", "reason"}]]}; "skipped" is there only when a family of rows
 was not computed (the VaR/ES rows without a price history), saying why.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from crossmargin.core.collateral import value_collateral
from crossmargin.core.margin.portfolio import PortfolioMargin, explain_account
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, TIER_PRESETS
from crossmargin.core.pricing import revalue
from crossmargin.engine.inputs import LoadedBook
from crossmargin.engine.margin_run import make_model
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.var_run import COMPARE_PRESETS, NO_HISTORY


def explain_report(loaded: LoadedBook, account_id: str, *, preset: str | None = None) -> dict[str, Any]:
    choice = make_model("portfolio", loaded, preset)
    assert isinstance(choice.model, PortfolioMargin)
    model = choice.model
    book = choice.book
    row = book.account_row(account_id)
    valuation = revalue(book.instruments, loaded.market)
    e = explain_account(model, book, loaded.market, row, valuation)
    scenarios = e.scenarios
    scale = scenarios.weight  # P&L items are already in the numeraire (explain_account)
    worst = e.worst_scenario
    charging = e.per_group_usd > 0.0
    rows_charged = e.per_group_scenario[charging]
    # Contribution of each item: weighted loss in each charging group's worst scenario.
    position_contribution = -(e.scenario_pnl_usd[:, rows_charged] * scale[rows_charged]).sum(axis=1)
    collateral_contribution = -(e.collateral_pnl_usd[:, rows_charged] * scale[rows_charged]).sum(axis=1)
    total = e.scenario_pnl_usd.sum(axis=0) + e.collateral_pnl_usd.sum(axis=0)
    underlyings = book.instruments.underlyings
    u_of = book.instruments.underlying_index[e.position_instrument]
    per_underlying = {
        u: float(e.scenario_pnl_usd[u_of == n, worst].sum())
        for n, u in enumerate(underlyings)
        if np.any(u_of == n)
    }
    for k, symbol in enumerate(book.assets.symbols):
        if e.collateral_pnl_usd[k, worst] != 0.0:
            key = symbol if symbol in per_underlying else f"{symbol} (collateral)"
            per_underlying[key] = per_underlying.get(key, 0.0) + float(e.collateral_pnl_usd[k, worst])
    factor_moves = {
        f: float(scenarios.price_factor[worst, n] - 1.0)
        for n, f in enumerate(scenarios.factors)
        if scenarios.price_factor[worst, n] != 1.0
    }
    collateral_values = book.balances[row]
    values = value_collateral(
        book.balances[row : row + 1], book.assets, loaded.market.asset_prices(book.assets)
    ).value_usd[0]
    return {
        "account_id": account_id,
        "model": "portfolio",
        "preset": model.params.name,
        "initial_margin_usd": e.initial_margin_usd,
        "maintenance_margin_usd": e.maintenance_margin_usd,
        "grid_usd": e.grid_usd,
        "min_delta_usd": e.min_delta_usd,
        "worst_scenario": {
            "index": worst,
            "label": scenarios.labels[worst],
            "weight": float(scenarios.weight[worst]),
            "price_moves": factor_moves,
            "total_pnl_usd": float(total[worst]),
        },
        "groups": [
            {"label": scenarios.labels[int(j)], "loss_usd": float(v)}
            for j, v in zip(e.per_group_scenario, e.per_group_usd, strict=True)
        ],
        "positions": [
            {
                "instrument_id": book.instruments.ids[int(i)],
                "underlying": underlyings[int(book.instruments.underlying_index[i])],
                "quantity": float(q),
                "scenario_pnl_usd": float(e.scenario_pnl_usd[n, worst]),
                "contribution_usd": float(position_contribution[n]),
            }
            for n, (i, q) in enumerate(zip(e.position_instrument, e.quantity, strict=True))
        ],
        "collateral": [
            {
                "asset": symbol,
                "balance": float(collateral_values[k]),
                "value_usd": float(values[k]),
                "scenario_pnl_usd": float(e.collateral_pnl_usd[k, worst]),
                "contribution_usd": float(collateral_contribution[k]),
            }
            for k, symbol in enumerate(book.assets.symbols)
            if collateral_values[k] != 0.0
        ],
        "dampener_usd": float(scenarios.offsets[rows_charged].sum()),
        "per_underlying": per_underlying,
        "addons": e.addons_usd,
        "scenarios": [
            {
                "label": label,
                "pnl_usd": float(total[s]),
                "loss_usd": float(-scale[s] * total[s] - scenarios.offsets[s]),
            }
            for s, label in enumerate(scenarios.labels)
        ],
    }


def compare_report(
    loaded: LoadedBook, account_id: str, *, history: PriceHistorySource | None
) -> dict[str, Any]:
    """One account under isolated, cross (the book's schedules and each venue's tier table), every
    portfolio preset, the sensitivity model and, given a price history, the VaR/ES presets of
    `var_run.COMPARE_PRESETS`, with the saving each gives over isolated. history=None: the
    report's "skipped" says the VaR/ES rows were not computed and why."""
    choices: list[tuple[str, str | None]] = [("isolated", None), ("cross", None)]
    choices += [("cross", tier) for tier in TIER_PRESETS]
    choices += [("portfolio", name) for name in PORTFOLIO_PRESETS]
    choices += [("sensitivity", None)]
    skipped: list[dict[str, Any]] = []
    if history is not None:  # HS VaR 99 %, FHS ES 97.5 %, MC ES 97.5 % over real history
        choices += [("var", name) for name in COMPARE_PRESETS]
    else:
        skipped.append({"model": "var", "presets": list(COMPARE_PRESETS), "reason": NO_HISTORY})
    rows: list[dict[str, Any]] = []
    for name, preset in choices:  # a handful of models, each evaluated on the one account
        choice = make_model(name, loaded, preset, history=history)
        sub = choice.book.select([choice.book.account_row(account_id)])
        result = choice.model.evaluate(sub, loaded.market)
        rows.append(
            {
                "model": name,
                "preset": preset,
                "initial_margin_usd": float(result.initial_margin_usd[0]),
                "maintenance_margin_usd": float(result.maintenance_margin_usd[0]),
                "equity_usd": float(result.equity_usd[0]),
            }
        )
    isolated = rows[0]["initial_margin_usd"]
    for r in rows:
        saving = isolated - r["initial_margin_usd"]
        r["saving_vs_isolated_usd"] = saving
        r["saving_vs_isolated_pct"] = None if isolated <= 0.0 else saving / isolated
    report: dict[str, Any] = {"account_id": account_id, "book": loaded.path, "rows": rows}
    if skipped:
        report["skipped"] = skipped
    return report

"""The table's rows of a columnar report: the riskiest accounts only, picked vectorised, so a
book of a million accounts prints its table without a Python object per account."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from crossmargin.engine.report_columns import MarginColumns


def riskiest_report(columns: MarginColumns, limit: int) -> dict[str, Any]:
    """The header and the `limit` riskiest accounts (bankrupt first, then by margin ratio, book
    order among equals) as the JSON report's account objects, without positions or collateral."""
    import numpy as np  # here: `crossmargin --help` imports no numpy

    a = columns.accounts
    # The table's order: -(ratio), bankrupt (null ratio) as -inf; a stable sort keeps book order.
    key = np.where(np.isnan(a.margin_ratio), -np.inf, -a.margin_ratio)
    rows = np.argsort(key, kind="stable")[:limit]
    ratio = a.margin_ratio[rows]
    accounts = [
        {
            "account_id": a.account_id[r],
            "equity_usd": float(a.equity_usd[r]),
            "initial_margin_usd": float(a.initial_margin_usd[r]),
            "maintenance_margin_usd": float(a.maintenance_margin_usd[r]),
            "available_usd": float(a.available_usd[r]),
            "margin_ratio": None if np.isnan(value) else float(value),
            "bankrupt": bool(a.bankrupt[r]),
            "below_maintenance": bool(a.below_maintenance[r]),
        }
        for r, value in zip(rows.tolist(), ratio.tolist(), strict=True)
    ]
    return {
        "model": columns.model,
        "preset": columns.preset,
        "valuation_time": columns.valuation_time,
        "book": columns.book,
        "accounts": accounts,
    }

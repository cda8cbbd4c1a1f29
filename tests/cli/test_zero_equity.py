"""Issue 14: exact zero where it should be zero. An inverse perpetual opened at the mark with no
collateral is worth exactly 0 USD (q·cs·S·(1/E − 1/M) with E = M), so the account's equity is 0
with a positive maintenance margin: bankrupt by the rule equity <= 0, margin ratio null. The
valuation once left 9.7e-11 USD of cancellation error and reported `bankrupt: false` with a
margin ratio of 4.45e14."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from crossmargin.cli.main import app

runner = CliRunner()

BOOK: dict[str, Any] = {
    "valuation_time": "2025-12-30T17:31:15Z",
    "market": {"index_prices": {"SOL": 89.95}},
    "assets": [{"symbol": "USDC", "price_usd": 1.0}, {"symbol": "SOL"}],
    "instruments": [
        {
            "id": "SOL-PERPETUAL",
            "kind": "perpetual",
            "underlying": "SOL",
            "settlement": "inverse",
            "contract_size": 1,
            "mark_price": 91.0,
            "margin": {"initial_rate": 0.1, "maintenance_rate": 0.05},
        }
    ],
    "accounts": [
        {
            "id": "flat",
            "collateral": {},
            "positions": [{"instrument": "SOL-PERPETUAL", "quantity": 873939.664}],
        }
    ],
}


@pytest.mark.parametrize("model", ["cross", "isolated", "portfolio", "sensitivity"])
def test_inverse_perp_opened_at_the_mark_without_collateral_is_bankrupt(tmp_path: Path, model: str) -> None:
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(BOOK), encoding="utf-8")
    result = runner.invoke(app, ["margin", str(path), "--model", model, "--json"])
    assert result.exit_code == 0, result.output
    (account,) = json.loads(result.stdout)["accounts"]
    (position,) = account["positions"]
    assert position["value_usd"] == 0.0  # exactly: entered at the mark
    assert position["unrealised_pnl_usd"] == 0.0
    assert account["equity_usd"] == 0.0
    assert account["maintenance_margin_usd"] > 0.0
    assert account["bankrupt"] is True
    assert account["margin_ratio"] is None
    assert account["below_maintenance"] is True

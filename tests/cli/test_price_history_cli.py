"""Issue 14: a clone without the shared data. `crossmargin margin --model var` without a price
history stops with exit 2 and an error naming CROSSMARGIN_DATA and the file format (no
traceback), and a history of one's own in the documented format (docs/cli.md, "Price history
file") is all VaR needs."""

from __future__ import annotations

import json
from datetime import date, timedelta
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossmargin.cli.main import app
from tests.adapters.files.bad_books import DESK

runner = CliRunner()

# Daily log-return volatility of the synthetic closes, per symbol of the example book.
VOLATILITY = {"BTC": 0.03, "ETH": 0.04, "SOL": 0.05, "USDC": 0.0005, "USDT": 0.0005}
START_USD = {"BTC": 60_000.0, "ETH": 3_000.0, "SOL": 120.0, "USDC": 1.0, "USDT": 1.0}
DAYS = 800  # more than the historical presets' 730-day window before 2025-12-30


def test_margin_var_without_the_shared_data_names_crossmargin_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CROSSMARGIN_DATA", str(tmp_path))  # an empty directory
    result = runner.invoke(app, ["margin", str(DESK), "--model", "var"])
    assert result.exit_code == 2
    message = " ".join(result.stderr.split())
    assert message.startswith("error: history:")
    assert "CROSSMARGIN_DATA" in message
    assert "date, symbol, close_usd" in message  # how to bring one's own
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_margin_var_on_your_own_price_history(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(14)
    last = date(2025, 12, 29)  # the day before the example book's valuation time
    lines = ["date,symbol,close_usd"]
    price = dict(START_USD)
    for back in range(DAYS - 1, -1, -1):
        day = (last - timedelta(days=back)).isoformat()
        for symbol, volatility in VOLATILITY.items():
            price[symbol] *= float(np.exp(rng.normal(0.0, volatility)))
            lines.append(f"{day},{symbol},{price[symbol]:.6f}")
    (tmp_path / "prices_daily_yahoo.csv").write_text("\n".join(lines) + "\n", encoding="utf-8")
    monkeypatch.setenv("CROSSMARGIN_DATA", str(tmp_path))
    result = runner.invoke(app, ["margin", str(DESK), "--model", "var", "--preset", "hs-es975", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["preset"] == "hs-es975"
    for account in report["accounts"]:
        assert account["initial_margin_usd"] > 0.0
        assert account["maintenance_margin_usd"] == pytest.approx(
            0.8 * account["initial_margin_usd"], rel=1e-12
        )

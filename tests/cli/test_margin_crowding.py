"""`crossmargin margin --crowding`: the crowding add-on on a book small enough to check by hand.

One BTC linear perpetual at an index of 50,000 USD; longs of 3 and 1 BTC, a short of 1 BTC; no
open-interest or funding history (CROSSMARGIN_DATA points at an empty folder), so only the book's
own signals count, each with weight 0.2 (docs/crowding.md):

    imbalance I = (4 − 1) / (4 + 1) = 0.6: longs see ramp((0.6 − 0.2) / 0.6) = 2/3, shorts 0
    concentration: longs (3/4)² + (1/4)² = 0.625 → ramp 1; shorts 1² = 1 → ramp 1
    score: longs (0.2·2/3 + 0.2·1) / 0.4 = 5/6, shorts (0 + 0.2·1) / 0.4 = 1/2
    rate = min(0.15, 0.05 · score · (1 + 2 · share)):
        whale (share 3/4): 0.05 · 5/6 · 2.5 = 0.1041666… → add-on 0.1041666… · 3 · 50,000 = 15,625
        small (share 1/4): 0.05 · 5/6 · 1.5 = 0.0625     → 0.0625 · 1 · 50,000 = 3,125
        bear  (share 1):   0.05 · 1/2 · 3   = 0.075      → 0.075 · 1 · 50,000 = 3,750
IM = 10 % of notional + add-on; MM = 5 % + half the add-on.
"""

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
    "market": {"index_prices": {"BTC": 50_000.0}},
    "assets": [{"symbol": "USDC", "price_usd": 1.0}],
    "instruments": [
        {
            "id": "BTC-PERP",
            "kind": "perpetual",
            "underlying": "BTC",
            "settlement": "linear",
            "contract_size": 1,
            "margin": {"initial_rate": 0.1, "maintenance_rate": 0.05},
        }
    ],
    "accounts": [
        {
            "id": name,
            "collateral": {"USDC": 1_000_000},
            "positions": [{"instrument": "BTC-PERP", "quantity": q}],
        }
        for name, q in (("whale", 3), ("small", 1), ("bear", -1))
    ],
}
ADDON_USD = {"whale": 15_625.0, "small": 3_125.0, "bear": 3_750.0}
SIZE = {"whale": 3, "small": 1, "bear": 1}


@pytest.fixture
def book(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    empty = tmp_path / "no-history"
    empty.mkdir()
    monkeypatch.setenv("CROSSMARGIN_DATA", str(empty))  # no open interest, no funding: book signals only
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(BOOK), encoding="utf-8")
    return path


def test_crowding_addon_is_the_hand_computed_one(book: Path) -> None:
    result = runner.invoke(app, ["margin", str(book), "--crowding", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["model"] == "cross+crowding"
    btc = report["crowding"]["BTC"]
    assert btc["score_long"] == pytest.approx(5 / 6, rel=1e-12)
    assert btc["score_short"] == pytest.approx(0.5, rel=1e-12)
    assert btc["funding_apr"] is None and btc["open_interest_ratio"] is None
    for account in report["accounts"]:
        name = account["account_id"]
        addon = ADDON_USD[name]
        notional = SIZE[name] * 50_000.0
        assert account["crowding_addon_usd"] == pytest.approx(addon, rel=1e-12)
        assert account["initial_margin_usd"] == pytest.approx(0.10 * notional + addon, rel=1e-12)
        assert account["maintenance_margin_usd"] == pytest.approx(0.05 * notional + addon / 2, rel=1e-12)


def test_crowding_column_in_the_table(book: Path) -> None:
    result = runner.invoke(app, ["margin", str(book), "--crowding"], env={"COLUMNS": "200"})
    assert result.exit_code == 0, result.output
    assert "crowding" in result.stdout and "15,625.00" in result.stdout
    assert "cross+crowding margin" in result.stdout


def test_without_the_flag_no_addon(book: Path) -> None:
    result = runner.invoke(app, ["margin", str(book), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert "crowding" not in report and all("crowding_addon_usd" not in a for a in report["accounts"])
    whale = next(a for a in report["accounts"] if a["account_id"] == "whale")
    assert whale["initial_margin_usd"] == pytest.approx(15_000.0, rel=1e-12)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "isolated"], "pooled models"),
        (["--out", "report.parquet"], "--crowding"),
    ],
)
def test_crowding_refused_where_it_cannot_apply(book: Path, args: list[str], message: str) -> None:
    result = runner.invoke(app, ["margin", str(book), "--crowding", *args])
    assert result.exit_code == 2, result.output
    assert message in result.output
    assert "Traceback" not in result.output

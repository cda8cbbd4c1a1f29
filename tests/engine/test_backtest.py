"""The back-test walk on real history: realised losses from full revaluation, statistics per
(account, model), and the CLI command with its charts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossmargin.adapters.files import load_book
from crossmargin.adapters.history.prices import CsvPriceHistory, load_price_history
from crossmargin.cli.main import app
from crossmargin.engine.backtest import run_backtest
from crossmargin.engine.memory import ArrayPriceHistory
from crossmargin.errors import InputError
from tests.conftest import shared_data_dir
from tests.engine.histories import random_walk_history

BOOK = Path(__file__).resolve().parents[2] / "examples" / "backtest.yaml"
DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"


def test_walk_realised_loss_and_exceedances() -> None:
    data = shared_data_dir()
    run = run_backtest(
        load_book(BOOK),
        ["cross", "var:hs-var99"],
        history=CsvPriceHistory(path=data / "prices_daily_yahoo.csv"),
        first_day="2022-11-01",
        last_day="2022-11-20",
        account_ids=["btc-long"],
    )
    assert run.days[0] == np.datetime64("2022-11-01") and run.days.size == 20
    series = run.get("btc-long", "var:hs-var99")
    history = load_price_history(data / "prices_daily_yahoo.csv").select(["BTC", "USDC"])
    rows = np.searchsorted(history.days, run.days)
    btc, usdc = history.close_usd[:, 0], history.close_usd[:, 1]
    expected = -3.0 * (btc[rows + 2] - btc[rows]) - 60_000.0 * (usdc[rows + 2] - usdc[rows])
    assert series.loss_usd == pytest.approx(expected, rel=1e-9)
    assert series.stats.exceedances == int(np.sum(series.loss_usd > series.margin_usd))
    assert series.stats.peak_to_trough >= 1.0 and series.stats.largest_5d_increase >= 0.0
    cross = run.get("btc-long", "cross")
    assert cross.stats.exceedances > series.stats.exceedances


def test_backtest_rejects_books_with_expiring_instruments() -> None:
    history = random_walk_history({"BTC": 90_000.0, "ETH": 3_000.0, "SOL": 120.0}, last_day="2024-12-31")
    with pytest.raises(InputError, match="back-test books"):
        run_backtest(
            load_book(DESK), ["cross"], history=history, first_day="2024-01-01", last_day="2024-01-05"
        )


def test_walk_on_an_in_memory_history_realises_the_hand_computed_loss() -> None:
    """BTC doubles, then halves, day after day: the 1-day loss of a long BTC perp is known exactly."""
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-11"))
    btc = np.array([40_000.0, 80_000.0] * 5)
    flat = np.ones(10)
    history = ArrayPriceHistory.from_arrays(
        days=days,
        symbols=["BTC", "ETH", "SOL", "USDC"],
        close_usd=np.column_stack([btc, 3_000.0 * flat, 100.0 * flat, flat]),
    )
    run = run_backtest(
        load_book(BOOK),
        ["cross"],
        history=history,
        first_day="2024-01-01",
        last_day="2024-01-09",
        horizon_days=1,
        account_ids=["btc-long"],
    )
    assert run.days.size == 9
    # btc-long holds 3 BTC-USDC-PERP (examples/backtest.yaml): loss = -3 (BTC tomorrow - BTC today).
    series = run.get("btc-long", "cross")
    assert series.loss_usd == pytest.approx(-3.0 * (btc[1:] - btc[:-1]), rel=1e-12)
    assert np.all(series.margin_usd > 0.0)


def test_cli_backtest_json_and_charts(tmp_path: Path) -> None:
    shared_data_dir()
    result = CliRunner().invoke(
        app,
        ["backtest", str(BOOK), "--model", "cross", "--model", "var:fhs-es975", "--from", "2024-08-01",
         "--to", "2024-08-10", "--account", "alt-beta", "--json", "--out", str(tmp_path)],
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [r["model"] for r in report["rows"]] == ["cross", "var:fhs-es975"]
    assert {"exceedances", "kupiec_p_value", "christoffersen_p_value", "worst_shortfall_usd",
            "largest_5d_increase", "largest_30d_increase", "peak_to_trough"} <= set(report["rows"][0])  # fmt: skip
    assert (tmp_path / "backtest-alt-beta.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    page = (tmp_path / "backtest.html").read_text()
    assert "data:image/png;base64," in page and "alt-beta" in page


def test_cli_margin_explain_and_compare_with_var() -> None:
    shared_data_dir()
    runner = CliRunner()
    margin = runner.invoke(app, ["margin", str(DESK), "--model", "var", "--preset", "hs-var99", "--json"])
    assert margin.exit_code == 0, margin.output
    report = json.loads(margin.stdout)
    assert report["model"] == "var" and report["preset"] == "hs-var99"
    for account in report["accounts"]:
        positions = sum(p["initial_margin_usd"] for p in account["positions"])
        assert positions == pytest.approx(account["initial_margin_usd"], rel=1e-9, abs=1e-6)
    explain = runner.invoke(
        app, ["explain", str(DESK), "--account", "vol-seller", "--model", "var", "--json"]
    )
    assert explain.exit_code == 0, explain.output
    e = json.loads(explain.stdout)
    total = sum(p["component_usd"] for p in e["positions"]) + sum(c["component_usd"] for c in e["collateral"])
    assert total == pytest.approx(e["group_weight"] * e["es_usd"], rel=1e-9)
    table = runner.invoke(app, ["explain", str(DESK), "--account", "vol-seller", "--model", "var"])
    assert table.exit_code == 0 and "component ES" in table.stdout
    compare = runner.invoke(app, ["compare", str(DESK), "--account", "vol-seller", "--json"])
    assert compare.exit_code == 0, compare.output
    presets = [r["preset"] for r in json.loads(compare.stdout)["rows"] if r["model"] == "var"]
    assert presets == ["hs-var99", "fhs-es975", "mc-es975"]


def test_march_2020_is_walked_for_the_portfolios_whose_history_reaches_it() -> None:
    """Issue 14: each account walks the history of what it holds. The book lists a SOL perp
    (SOL's history starts 2020-04-10), which once cut every account's walk to after it; now
    btc-long (BTC perp on USDC) is walked through the 12-13 March 2020 crash and alt-beta (SOL)
    is skipped with its reason."""
    data = shared_data_dir()
    run = run_backtest(
        load_book(BOOK),
        ["cross"],
        history=CsvPriceHistory(path=data / "prices_daily_yahoo.csv"),
        first_day="2020-03-09",
        last_day="2020-03-13",
    )
    assert run.account_ids == ("btc-long", "eth-carry", "btc-eth-pair")
    assert [name for name, _ in run.skipped] == ["alt-beta"]
    assert "SOL" in run.skipped[0][1]
    series = run.get("btc-long", "cross")
    assert np.datetime64("2020-03-12") in series.days
    history = load_price_history(data / "prices_daily_yahoo.csv").select(["BTC", "USDC"])
    row = int(np.searchsorted(history.days, np.datetime64("2020-03-11")))
    now, later = history.close_usd[row], history.close_usd[row + 2]
    crash = 3.0 * (now[0] - later[0]) + 60_000.0 * (now[1] - later[1])  # 3 BTC long on 60,000 USDC
    at = int(np.flatnonzero(series.days == np.datetime64("2020-03-11"))[0])
    assert series.loss_usd[at] == pytest.approx(crash, rel=1e-6)
    assert crash > 5_000.0  # BTC fell from ~7,900 to ~5,200
    assert series.exceeded[at]  # cross margin's 1 % IM does not cover it

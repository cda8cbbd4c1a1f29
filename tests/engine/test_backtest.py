"""The back-test walk on real history: realised losses from full revaluation, statistics per
(account, model), and the CLI command with its charts."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numba
import numpy as np
import pytest
from typer.testing import CliRunner

from crossmargin.adapters.files import load_book
from crossmargin.adapters.history.prices import CsvPriceHistory, load_price_history
from crossmargin.cli.main import app
from crossmargin.core.var.backtest import backtest_stats
from crossmargin.engine.backtest import BacktestSeries, held_only, period_result, run_backtest
from crossmargin.engine.margin_run import make_model
from crossmargin.engine.memory import ArrayPriceHistory
from crossmargin.engine.risk_engine import RiskEngine
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
    assert not list(tmp_path.parent.glob(f".{tmp_path.name}.*"))  # the charts' staging removed


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


def test_whole_history_walk_starts_at_the_latest_first_close_plus_the_var_window() -> None:
    """Issue 14: asked from the first day of the data (2014-09-17), btc-long (BTC perp; the book's
    collateral USDC, BTC, ETH) starts at USDC's first close, 2018-10-08, plus the VaR models'
    366-day window: 2019-10-09, before the March 2020 crash."""
    data = shared_data_dir()
    run = run_backtest(
        load_book(BOOK),
        ["var:hs-var99"],
        history=CsvPriceHistory(path=data / "prices_daily_yahoo.csv"),
        first_day="2014-09-17",
        last_day="2019-10-12",
        account_ids=["btc-long"],
    )
    assert run.days[0] == np.datetime64("2018-10-08") + np.timedelta64(366, "D")
    assert run.days[0] == np.datetime64("2019-10-09") and run.days.size == 4


def test_march_2020_crash_exceeds_cross_and_hs_var_with_the_hand_computed_shortfall() -> None:
    """The 12-13 March 2020 crash in the table's terms: the worst 2-day loss among the windows
    that hold the 12th or 13th is t = 2020-03-11 (BTC 7,911 -> 5,563), and it exceeds both 1 %
    cross margin and HS VaR 99 % on two years of history; the shortfall is loss - margin."""
    data = shared_data_dir()
    threads = numba.get_num_threads()
    run = run_backtest(
        load_book(BOOK),
        ["cross", "var:hs-var99"],
        history=CsvPriceHistory(path=data / "prices_daily_yahoo.csv"),
        first_day="2020-03-05",
        last_day="2020-03-16",
        account_ids=["btc-long"],
    )
    assert numba.get_num_threads() == threads  # the walk's one-thread block is undone
    history = load_price_history(data / "prices_daily_yahoo.csv").select(["BTC", "USDC"])
    row = int(np.searchsorted(history.days, np.datetime64("2020-03-11")))
    now, later = history.close_usd[row], history.close_usd[row + 2]
    crash = 3.0 * (now[0] - later[0]) + 60_000.0 * (now[1] - later[1])
    for model in ("cross", "var:hs-var99"):
        series = run.get("btc-long", model)
        result = period_result(series, "2020-03-12", "2020-03-13", horizon_days=2)
        assert result is not None and result.days == 3  # t = 10, 11, 12 March
        assert result.worst_day == np.datetime64("2020-03-11")
        assert result.worst_loss_usd == pytest.approx(crash, rel=1e-9)
        at = int(np.flatnonzero(series.days == np.datetime64("2020-03-11"))[0])
        assert result.margin_usd == series.margin_usd[at]
        assert result.exceeded and result.worst_shortfall_usd == pytest.approx(crash - series.margin_usd[at])
    assert period_result(run.get("btc-long", "cross"), "2021-05-19", "2021-05-19", horizon_days=2) is None


def test_period_result_takes_the_loss_windows_that_hold_the_period() -> None:
    """(t, t + h] holds a day of [first, last] for t in [first - h, last - 1]: with h = 2 and the
    period 2024-01-05 .. 2024-01-06, t = 3, 4, 5 January."""
    days = np.arange(np.datetime64("2024-01-01"), np.datetime64("2024-01-11"))
    loss = np.array([0.0, 0.0, 5.0, 9.0, 12.0, 4.0, 30.0, 0.0, 0.0, 0.0])
    margin = np.array([10.0, 10.0, 10.0, 10.0, 10.0, 1.0, 10.0, 10.0, 10.0, 10.0])
    series = BacktestSeries(
        account_id="a",
        model="m",
        margin_usd=margin,
        loss_usd=loss,
        stats=backtest_stats(margin, loss, coverage=0.99),
        days=days,
    )
    result = period_result(series, "2024-01-05", "2024-01-06", horizon_days=2)
    assert result is not None
    # t = 3, 4, 5 January: losses 5, 9, 12 against 10; the 6th (its window is the 7th and 8th,
    # a shortfall of 3) and the 7th (30) are outside.
    assert (result.days, result.exceedances) == (3, 1)
    assert result.worst_day == np.datetime64("2024-01-05") and result.worst_loss_usd == 12.0
    assert result.margin_usd == 10.0 and result.worst_shortfall_usd == 2.0
    assert period_result(series, "2024-01-01", "2024-01-01", horizon_days=2) is None


@pytest.mark.parametrize("preset", ["deribit-pm", "span", "crossmargin-multi"])
def test_held_only_keeps_the_underlying_of_held_collateral(preset: str) -> None:
    """alt-beta holds SOL and ETH perps on 2 BTC: BTC stays an underlying of its walk's book (the
    portfolio grids shock collateral through its underlying), so each preset's margin is the one
    of the account inside the whole book (deribit-pm 22,105 USD at the book's prices, not the
    13,046 of a book without BTC)."""
    loaded = load_book(BOOK)
    one = dataclasses.replace(loaded, book=loaded.book.select([loaded.book.account_row("alt-beta")]))
    held = held_only(one)
    assert held.book.instruments.underlyings == ("BTC", "ETH", "SOL")
    assert held.book.instruments.ids == ("ETH-USDC-PERP", "SOL-USDC-PERP")
    margins = []
    for book in (one, held):
        choice = make_model("portfolio", book, preset)
        margins.append(RiskEngine(choice.book, book.market, choice.model).result.initial_margin_usd[0])
    assert margins[1] == pytest.approx(margins[0], rel=1e-12)

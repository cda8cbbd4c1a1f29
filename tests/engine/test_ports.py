"""The engine's ports and their in-memory implementations: each in-memory part satisfies its
protocol and drives the engine like the file adapters do; `compare` without a price history says
which rows it skipped and why."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import numpy as np
import pytest

from crossmargin.adapters.clock import SystemClock
from crossmargin.adapters.eventlog import JsonLinesEventSink
from crossmargin.adapters.feeds import DailyOhlcQuotes, QuoteFile
from crossmargin.adapters.files import load_book
from crossmargin.adapters.history.prices import CsvPriceHistory
from crossmargin.adapters.volatility import GarchFilter
from crossmargin.core.margin.var import var_preset
from crossmargin.core.oracle import NS_PER_SECOND
from crossmargin.engine.inputs import LoadedBook, QuoteTable
from crossmargin.engine.margin_run import run_margin
from crossmargin.engine.memory import (
    ArrayPriceHistory,
    FixedClock,
    GivenVolatility,
    ListEventSink,
    ListQuoteFeed,
    Quote,
    SteppingClock,
)
from crossmargin.engine.portfolio_run import compare_report
from crossmargin.engine.ports import Clock, EventSink, PriceHistorySource, QuoteSource, VolatilityFilter
from crossmargin.engine.priced_run import load_snapshot, snapshot_from_quotes
from crossmargin.engine.var_run import COMPARE_PRESETS, var_model
from crossmargin.errors import InputError
from tests.engine.histories import desk_history

DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"
# FHS with a constant volatility rescales each return by sigma / sigma: HS up to rounding.
RESCALE_TOLERANCE = 1e-12


@pytest.fixture(scope="module")
def loaded() -> LoadedBook:
    return load_book(DESK)


def test_every_in_memory_part_and_every_adapter_is_its_port(tmp_path: Path) -> None:
    history = desk_history()
    assert isinstance(history, PriceHistorySource)
    assert isinstance(CsvPriceHistory(path=tmp_path / "closes.csv"), PriceHistorySource)
    assert isinstance(GivenVolatility(volatility_daily=np.array([0.02])), VolatilityFilter)
    assert isinstance(GarchFilter(), VolatilityFilter)
    assert isinstance(ListQuoteFeed(), QuoteSource)
    assert isinstance(QuoteFile(path=tmp_path / "quotes.csv"), QuoteSource)
    assert isinstance(DailyOhlcQuotes(symbols=("BTC",), start=np.datetime64("2024-01-01").item(),
                                      end=np.datetime64("2024-01-02").item()), QuoteSource)  # fmt: skip
    assert isinstance(ListEventSink(), EventSink)
    with JsonLinesEventSink(tmp_path / "events.jsonl") as sink:
        assert isinstance(sink, EventSink)
    assert isinstance(FixedClock(time_ns=1), Clock)
    assert isinstance(SteppingClock(start_ns=0, step_ns=1), Clock)
    assert isinstance(SystemClock(), Clock)


def test_compare_without_a_history_says_the_var_rows_were_skipped(loaded: LoadedBook) -> None:
    report = compare_report(loaded, "vol-seller", history=None)
    assert all(r["model"] != "var" for r in report["rows"])
    [skipped] = report["skipped"]
    assert skipped["model"] == "var" and skipped["presets"] == list(COMPARE_PRESETS)
    assert "no price history was given" in skipped["reason"]


def test_compare_with_an_in_memory_history_adds_the_var_rows(loaded: LoadedBook) -> None:
    without = compare_report(loaded, "vol-seller", history=None)
    report = compare_report(loaded, "vol-seller", history=desk_history())
    assert "skipped" not in report
    var_rows = [r for r in report["rows"] if r["model"] == "var"]
    assert [r["preset"] for r in var_rows] == list(COMPARE_PRESETS)
    assert all(r["initial_margin_usd"] > 0.0 for r in var_rows)
    assert report["rows"][: len(without["rows"])] == without["rows"]  # the other rows are unchanged


def test_a_garch_preset_uses_the_given_filter_and_needs_one(loaded: LoadedBook) -> None:
    history = desk_history()
    garch = dataclasses.replace(var_preset("fhs-garch-es975"), name="given-vol")
    with pytest.raises(InputError, match=r"var\.volatility_filter"):
        var_model(params=garch, history=history).evaluate(loaded.book, loaded.market)
    constant = GivenVolatility(volatility_daily=np.full(5, 0.02))
    filtered = var_model(params=garch, history=history, volatility=constant)
    plain = var_model(
        params=dataclasses.replace(garch, method="historical", volatility_filter="ewma"), history=history
    )
    im_filtered = filtered.evaluate(loaded.book, loaded.market).initial_margin_usd
    im_plain = plain.evaluate(loaded.book, loaded.market).initial_margin_usd
    assert im_filtered == pytest.approx(im_plain, rel=RESCALE_TOLERANCE)
    # An EWMA preset never calls an external filter, even when one is given.
    ewma = var_preset("fhs-es975")
    assert var_model(params=ewma, history=history, volatility=constant).volatility is None


def test_a_var_run_reads_only_what_its_history_gives(loaded: LoadedBook) -> None:
    one = run_margin(loaded, model="var", preset="hs-var99", history=desk_history(seed=1))
    same = run_margin(loaded, model="var", preset="hs-var99", history=desk_history(seed=1))
    other = run_margin(loaded, model="var", preset="hs-var99", history=desk_history(seed=2))
    assert np.array_equal(one.result.initial_margin_usd, same.result.initial_margin_usd)
    assert not np.array_equal(one.result.initial_margin_usd, other.result.initial_margin_usd)


def test_a_history_missing_a_risk_factor_names_it(loaded: LoadedBook) -> None:
    partial = desk_history().price_history().select(["BTC", "ETH", "USDC", "USDT"])
    history = ArrayPriceHistory(history=partial)
    with pytest.raises(InputError, match="SOL"):
        run_margin(loaded, model="var", preset="hs-var99", history=history)


def test_the_list_quote_feed_gives_the_snapshot_of_its_table() -> None:
    feed = ListQuoteFeed(assets=("BTC", "ETH"))
    for second, btc, eth in ((0, 40_000.0, 2_000.0), (5, 40_400.0, 1_990.0)):
        for source in ("a", "b", "c"):
            feed.append(Quote(time_ns=second * NS_PER_SECOND, asset="BTC", source=source, price_usd=btc))
            feed.append(Quote(time_ns=second * NS_PER_SECOND, asset="ETH", source=source, price_usd=eth))
    table = feed.quote_table()
    assert isinstance(table, QuoteTable) and len(table) == 12 and table.assets == ("BTC", "ETH")
    snapshot = load_snapshot(feed)
    again = snapshot_from_quotes(table)
    assert snapshot.assets == ("BTC", "ETH")
    assert np.array_equal(snapshot.update.price_usd, again.update.price_usd)
    assert snapshot.update.price_usd.tolist() == [40_400.0, 1_990.0]
    assert snapshot.update.as_of_ns == 5 * NS_PER_SECOND


def test_an_empty_quote_feed_is_an_input_error() -> None:
    with pytest.raises(InputError, match=r"^prices: the quotes have no rows"):
        load_snapshot(ListQuoteFeed())


def test_the_given_volatility_checks_its_shape() -> None:
    returns = np.zeros((10, 2))
    assert GivenVolatility(volatility_daily=np.array([0.01, 0.02]))(returns).shape == (11, 2)
    full = np.full((11, 2), 0.03)
    assert np.array_equal(GivenVolatility(volatility_daily=full)(returns), full)
    with pytest.raises(InputError, match="volatility_daily"):
        GivenVolatility(volatility_daily=np.array([0.01]))(returns)
    with pytest.raises(InputError, match="volatility_daily"):
        GivenVolatility(volatility_daily=np.full((10, 2), 0.03))(returns)
    with pytest.raises(InputError, match="volatility_daily"):
        GivenVolatility(volatility_daily=np.array([0.0, 0.01]))


def test_clocks() -> None:
    assert FixedClock(time_ns=7).now_ns() == FixedClock(time_ns=7).now_ns() == 7
    clock = SteppingClock(start_ns=100, step_ns=10)
    assert [clock.now_ns() for _ in range(3)] == [100, 110, 120]
    with pytest.raises(InputError, match="step_ns"):
        SteppingClock(start_ns=0, step_ns=-1)
    before = SystemClock().now_ns()
    assert SystemClock().now_ns() >= before > 1_700_000_000 * NS_PER_SECOND


def test_array_price_history_validates_like_the_core() -> None:
    with pytest.raises(InputError, match=r"history\.close_usd"):
        ArrayPriceHistory.from_arrays(
            days=["2024-01-01", "2024-01-02"], symbols=["BTC"], close_usd=[[1.0], [-1.0]]
        )
    with pytest.raises(InputError, match=r"history\.days"):
        ArrayPriceHistory.from_arrays(
            days=["2024-01-02", "2024-01-01"], symbols=["BTC"], close_usd=[[1.0], [2.0]]
        )


def test_cli_compare_without_the_shared_history_says_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from typer.testing import CliRunner

    from crossmargin.cli.main import app

    monkeypatch.setenv("CROSSMARGIN_DATA", str(tmp_path))  # no prices_daily_yahoo.csv there
    runner = CliRunner()
    result = runner.invoke(app, ["compare", str(DESK), "--account", "vol-seller", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert [s["model"] for s in report["skipped"]] == ["var"]
    assert all(r["model"] != "var" for r in report["rows"])
    table = runner.invoke(app, ["compare", str(DESK), "--account", "vol-seller"])
    assert table.exit_code == 0 and "var not computed" in " ".join(table.stdout.split())
    var = runner.invoke(app, ["margin", str(DESK), "--model", "var", "--json"])
    assert var.exit_code == 2 and var.stdout == ""
    assert "history" in var.stderr and "CROSSMARGIN_DATA" in " ".join(var.stderr.split())

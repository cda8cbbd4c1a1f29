"""Quote files (CSV/Parquet) and the replay adapter, and `crossmargin oracle replay`."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from crossmargin.adapters.feeds import (
    QuoteFile,
    QuoteFileError,
    QuoteTable,
    load_quotes,
    replay,
    write_quotes,
)
from crossmargin.cli.main import app
from crossmargin.core.oracle import NS_PER_SECOND, OracleParams, PriceStatus
from crossmargin.engine.ports import QuoteSource
from crossmargin.engine.priced_run import load_snapshot

SOURCES = ("a", "b", "c", "d", "e")


def spike_table() -> QuoteTable:
    """BTC at 100 from five sources each second for 10 s, source d at ×10 from second 5."""
    times, assets, sources, prices = [], [], [], []
    for second in range(10):
        for source in SOURCES:
            times.append(second * NS_PER_SECOND)
            assets.append("BTC")
            sources.append(source)
            prices.append(1000.0 if (source == "d" and second >= 5) else 100.0 + 0.01 * second)
    return QuoteTable.from_columns(time_ns=times, asset=assets, source=sources, price_usd=prices)


@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_oracle_quote_file_round_trip(tmp_path: Path, suffix: str) -> None:
    table = spike_table()
    path = tmp_path / f"quotes{suffix}"
    write_quotes(table, path)
    loaded = load_quotes(path)
    assert loaded.assets == ("BTC",) and loaded.sources == SOURCES
    np.testing.assert_array_equal(loaded.time_ns, table.time_ns)
    np.testing.assert_array_equal(loaded.price_usd, table.price_usd)
    # The engine's QuoteSource port over the same file reads the same table, and its snapshot is
    # the last step of the replay.
    source = QuoteFile(path=path)
    assert isinstance(source, QuoteSource)
    np.testing.assert_array_equal(source.quote_table().price_usd, loaded.price_usd)
    last = list(replay(loaded, params=OracleParams()))[-1].update
    np.testing.assert_array_equal(load_snapshot(source).update.price_usd, last.price_usd)


def test_oracle_quote_file_iso_times_and_errors(tmp_path: Path) -> None:
    path = tmp_path / "quotes.csv"
    path.write_text(
        "time,source,asset,price_usd\n2023-03-11T06:00:00Z,x,USDC,0.9\n2023-03-11T00:00:00Z,x,USDC,1.0\n"
    )
    table = load_quotes(path)
    assert table.time_ns[0] == 1_678_492_800 * NS_PER_SECOND  # sorted: midnight first
    assert list(table.price_usd) == [1.0, 0.9]
    path.write_text("time,source,asset,price_usd\n2023-03-11T00:00:00Z,x,USDC,-1\n")
    with pytest.raises(QuoteFileError, match="price_usd"):
        load_quotes(path)
    path.write_text("source,asset,price_usd\nx,USDC,1\n")
    with pytest.raises(QuoteFileError, match="time"):
        load_quotes(path)
    with pytest.raises(QuoteFileError, match="file"):
        load_quotes(tmp_path / "missing.csv")


def test_oracle_replay_rejects_the_spiking_source() -> None:
    steps = list(replay(spike_table(), params=OracleParams()))
    assert len(steps) == 10
    for step in steps:
        assert step.update.status[0] == PriceStatus.VALID
        assert abs(step.update.price_usd[0] - 100.0) < 0.1
        assert step.pauses == ()
    # A fixed tick: one update per 2 s with the quotes so far.
    ticked = list(replay(spike_table(), params=OracleParams(), tick_ns=2 * NS_PER_SECOND))
    assert [s.time_ns // NS_PER_SECOND for s in ticked] == [2, 4, 6, 8, 10]
    assert all(abs(s.update.price_usd[0] - 100.0) < 0.1 for s in ticked)


def test_oracle_cli_replay_json(tmp_path: Path) -> None:
    path = tmp_path / "quotes.parquet"
    write_quotes(spike_table(), path)
    result = CliRunner().invoke(app, ["oracle", "replay", str(path), "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.output)
    (btc,) = report["prices"]
    assert btc["status"] == "ok" and abs(btc["price_usd"] - 100.09) < 0.01
    assert btc["n_sources"] == 4
    assert report["pauses"] == []
    table = CliRunner().invoke(app, ["oracle", "replay", str(path)])
    assert table.exit_code == 0 and "BTC" in table.output


def test_oracle_cli_replay_bad_file(tmp_path: Path) -> None:
    path = tmp_path / "bad.csv"
    path.write_text("nothing\n1\n")
    result = CliRunner().invoke(app, ["oracle", "replay", str(path)])
    assert result.exit_code == 2

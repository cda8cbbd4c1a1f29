"""Issue 14: `margin --prices QUOTES` reads the oracle at the book's valuation time and says, per
account, the status of the prices it rests on. Quotes years older than the book, an asset with
too few sources, a lowercase name and quotes from after the valuation time each get their own
answer instead of a silent `ok`."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner, Result

from crossmargin.cli.main import app
from tests.conftest import shared_data_dir

runner = CliRunner()
DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"
AT_VALUATION = "2025-12-30T17:31:10Z"  # 5 s before the desk's valuation time (17:31:15Z)
HEADER = "time,source,asset,price_usd\n"


def _quotes(tmp_path: Path, rows: list[tuple[str, str, str, float]]) -> Path:
    path = tmp_path / "quotes.csv"
    path.write_text(HEADER + "".join(f"{t},{s},{a},{p}\n" for t, s, a, p in rows), encoding="utf-8")
    return path


def _margin(quotes: Path, *extra: str) -> Result:
    return runner.invoke(app, ["margin", str(DESK), "--prices", str(quotes), *extra])


def _statuses(result: Result) -> dict[str, str]:
    assert result.exit_code == 0, result.output
    return {a["account_id"]: a["price_status"] for a in json.loads(result.stdout)["accounts"]}


def test_quotes_from_2019_are_stale_for_a_2025_book_not_ok(tmp_path: Path) -> None:
    quotes = _quotes(tmp_path, [("2019-06-01T00:00:00Z", s, "BTC", 8000.0) for s in "abc"])
    statuses = _statuses(_margin(quotes, "--json"))
    # Every account but `directional` (ETH and SOL perps only) rests on BTC.
    assert statuses == {
        "basis-trader": "stale",
        "vol-seller": "stale",
        "directional": "ok",
        "near-liquidation": "stale",
    }
    prices = json.loads(_margin(quotes, "--json").stdout)["prices"]
    (btc,) = prices
    assert btc["status"] == "stale" and btc["age_ms"] > 6 * 365 * 86_400_000
    table = _margin(quotes)
    assert table.exit_code == 0
    assert "stale" in table.stdout
    assert "BTC: stale (last quote 2,404.7 days before the valuation time)" in " ".join(table.stderr.split())


def test_an_asset_with_one_source_says_no_price_on_its_accounts(tmp_path: Path) -> None:
    """Three sources are needed (OracleParams.min_sources): SOL from one source has no oracle
    price, keeps the book's, and the accounts trading SOL perps say so."""
    rows = [(AT_VALUATION, s, a, p) for s in "abc" for a, p in (("BTC", 88_000.0), ("ETH", 2_950.0))]
    quotes = _quotes(tmp_path, [*rows, (AT_VALUATION, "a", "SOL", 126.0)])
    statuses = _statuses(_margin(quotes, "--json"))
    assert statuses["directional"] == statuses["near-liquidation"] == "no_price"
    assert statuses["basis-trader"] == statuses["vol-seller"] == "ok"


def test_a_quoted_asset_the_book_does_not_hold_is_reported_unused(tmp_path: Path) -> None:
    rows = [(AT_VALUATION, s, a, p) for s in "abc" for a, p in (("BTC", 88_000.0), ("DOGE", 0.3))]
    result = _margin(_quotes(tmp_path, rows), "--json")
    assert result.exit_code == 0, result.output
    used = {p["asset"]: p["used_by_book"] for p in json.loads(result.stdout)["prices"]}
    assert used == {"BTC": True, "DOGE": False}
    assert "DOGE: quoted, not in the book (unused)" in _margin(_quotes(tmp_path, rows)).stderr


def _refused(result: Result, message: str) -> None:
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert message in " ".join(result.stderr.split()), result.stderr


def test_a_lowercase_symbol_is_refused_not_silently_unused(tmp_path: Path) -> None:
    quotes = _quotes(tmp_path, [(AT_VALUATION, s, "btc", 88_000.0) for s in "abc"])
    _refused(
        _margin(quotes, "--json"),
        "error: prices.asset[btc]: not a name of the book (names are exact): the book's is 'BTC'",
    )


def test_quotes_after_the_valuation_time_are_refused(tmp_path: Path) -> None:
    quotes = _quotes(tmp_path, [("2026-01-01T00:00:00Z", s, "BTC", 88_000.0) for s in "abc"])
    _refused(
        _margin(quotes),
        "error: prices[0].time: 2026-01-01T00:00:00Z is after the book's valuation time 2025-12-30T17:31:15Z",
    )


def test_one_word_for_a_good_price_in_replay_and_margin(tmp_path: Path) -> None:
    quotes = _quotes(tmp_path, [(AT_VALUATION, s, "BTC", 88_000.0) for s in "abc"])
    replayed = runner.invoke(app, ["oracle", "replay", str(quotes), "--json"])
    assert replayed.exit_code == 0, replayed.output
    assert json.loads(replayed.stdout)["prices"][0]["status"] == "ok"
    assert json.loads(_margin(quotes, "--json").stdout)["prices"][0]["status"] == "ok"


def _desk_quotes(tmp_path: Path) -> Path:
    """Three sources quoting the desk's underlyings at its own index prices, 5 s before valuation."""
    book_prices = {"BTC": 88_528.93, "ETH": 2_978.73, "SOL": 125.0}  # examples/desk.yaml
    return _quotes(tmp_path, [(AT_VALUATION, s, a, p) for s in "abc" for a, p in book_prices.items()])


def test_a_var_run_on_oracle_prices_says_how_stale_its_window_is(tmp_path: Path) -> None:
    """The VaR report's var_history block (window end, gap to the valuation time) was missing when
    --prices re-priced the book: the same block as without --prices."""
    shared_data_dir()
    quotes = _desk_quotes(tmp_path)
    args = ["--model", "var", "--preset", "hs-var99", "--json"]
    priced = json.loads(_margin(quotes, *args).stdout)
    plain = runner.invoke(app, ["margin", str(DESK), *args])
    assert plain.exit_code == 0, plain.output
    assert priced["var_history"] == json.loads(plain.stdout)["var_history"]
    assert priced["var_history"]["gap_days"] > 300  # the window ends 2025-02, the book is valued 2025-12


def test_levels_on_oracle_prices_search_under_the_run_s_own_model(tmp_path: Path) -> None:
    """--levels with --prices searched cross margin's levels whatever --model said (the vol seller's
    BTC liquidation price: 57,408 USD under cross, 41,686 under deribit-pm). With an oracle that
    agrees with the book, the priced run's levels are the portfolio model's."""
    quotes = _desk_quotes(tmp_path)
    args = ["--model", "portfolio", "--preset", "deribit-pm", "--levels", "--json", "--account", "vol-seller"]
    priced = json.loads(_margin(quotes, *args).stdout)["accounts"][0]["liquidation_price"]
    plain = runner.invoke(app, ["margin", str(DESK), *args])
    assert plain.exit_code == 0, plain.output
    expected = json.loads(plain.stdout)["accounts"][0]["liquidation_price"]
    assert expected["BTC"] == pytest.approx(41_686.0, abs=1.0)
    assert priced["BTC"] == pytest.approx(expected["BTC"], rel=1e-3)
    assert priced["ETH"] == pytest.approx(expected["ETH"], rel=1e-3)

"""Issue 14: a VaR/ES window says how stale it is. The shared history ends 2025-02-11; the desk
is valued 2025-12-30, so its window ends 321 days before the last close known then. The report
carries the gap, stderr warns beyond 7 days, and beyond `--max-history-gap-days` (default 366)
the run is refused naming the parameter."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.cli.main import app
from tests.conftest import shared_data_dir

DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"
runner = CliRunner()
ONE_ACCOUNT = ("--account", "near-liquidation")  # the window is the book's; one breakdown is enough


@pytest.fixture(autouse=True)
def _data() -> None:
    shared_data_dir()


def test_the_report_says_how_stale_the_window_is_and_stderr_warns() -> None:
    result = runner.invoke(app, ["margin", str(DESK), "--model", "var", "--json", *ONE_ACCOUNT])
    assert result.exit_code == 0, result.output
    window = json.loads(result.stdout)["var_history"]
    assert window["last_day"] == "2025-02-11"
    assert window["known_day"] == "2025-12-29"
    assert window["gap_days"] == 321
    assert window["stale"] is True
    assert "warning: the VaR window ends 2025-02-11, 321 days before" in " ".join(result.stderr.split())


def test_beyond_the_limit_the_run_is_refused_naming_the_parameter() -> None:
    result = runner.invoke(
        app, ["margin", str(DESK), "--model", "var", "--max-history-gap-days", "30", *ONE_ACCOUNT]
    )
    assert result.exit_code == 2, result.output
    assert result.stdout == "" and "Traceback" not in result.output
    message = " ".join(result.stderr.split())
    assert (
        "error: var.max_history_gap_days: the price history of BTC, ETH, SOL, USDC, USDT ends 2025-02-11"
        in message
    )
    assert "the limit is 30 days" in message


def test_a_book_valued_the_day_after_the_history_ends_has_a_current_window(tmp_path: Path) -> None:
    book = tmp_path / "desk.yaml"
    text = DESK.read_text(encoding="utf-8")
    book.write_text(
        text.replace("valuation_time: 2025-12-30T17:31:15Z", "valuation_time: 2025-02-12T12:00:00Z")
    )
    result = runner.invoke(app, ["margin", str(book), "--model", "var", "--json", *ONE_ACCOUNT])
    assert result.exit_code == 0, result.output
    window = json.loads(result.stdout)["var_history"]
    assert (window["last_day"], window["gap_days"], window["stale"]) == ("2025-02-11", 0, False)
    assert "warning" not in result.stderr

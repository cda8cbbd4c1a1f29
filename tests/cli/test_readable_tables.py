"""Issue 14, readable numbers: quantities exactly as held (0.001 BTC is not 0.00, 45,000 contracts
are not 4.5e+04), no -0.00, tables that fit an 80-column terminal without cutting a number or an
id, and titles that name the model and the preset that ran."""

from __future__ import annotations

import re
from pathlib import Path

import yaml
from hypothesis import given
from hypothesis import strategies as st
from typer.testing import CliRunner

from crossmargin.cli.main import app
from crossmargin.cli.render import money, quantity

DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"
runner = CliRunner()


@given(st.floats(min_value=-1e15, max_value=1e15, allow_nan=False))
def test_a_quantity_prints_every_digit_it_has(value: float) -> None:
    text = quantity(value)
    assert "e" not in text
    assert float(text.replace(",", "")) == value or (value == 0.0 and text == "0")


def test_small_and_large_quantities_print_exactly() -> None:
    assert quantity(0.001) == "0.001"
    assert quantity(-45_000.0) == "-45,000"
    assert quantity(12_340.0) == "12,340"
    assert quantity(1.5e-7) == "0.00000015"
    assert quantity(873_939.664) == "873,939.664"


def test_money_never_prints_minus_zero() -> None:
    assert money(-0.001) == "0.00"
    assert money(-0.0) == "0.00"
    assert money(-0.005) == "-0.01" or money(-0.005) == "0.00"  # rounding half-even of a binary float
    assert money(-1.0) == "-1.00"


def _small_book(tmp_path: Path) -> Path:
    book = yaml.safe_load(DESK.read_text(encoding="utf-8"))
    book["accounts"].append(
        {
            "id": "tiny-and-huge",
            "collateral": {"USDC": 1_000_000, "BTC": 0.001},
            "positions": [
                {"instrument": "BTC-USDC-PERP", "quantity": 0.001, "entry_price": 88_000},
                {"instrument": "ETH-USDC-PERP", "quantity": -45_000, "entry_price": 2_950},
            ],
        }
    )
    path = tmp_path / "book.yaml"
    path.write_text(yaml.safe_dump(book), encoding="utf-8")
    return path


def test_the_account_view_prints_quantities_and_balances_exactly(tmp_path: Path) -> None:
    result = runner.invoke(app, ["margin", str(_small_book(tmp_path)), "--account", "tiny-and-huge"])
    assert result.exit_code == 0, result.output
    rows = {line.split()[0]: line.split() for line in result.stdout.splitlines() if line.strip()}
    assert rows["BTC-USDC-PERP"][1] == "0.001"
    assert rows["ETH-USDC-PERP"][1] == "-45,000"
    assert rows["BTC"][3] == "0.001"  # "BTC (haircut 5.0%) 0.001 ..."
    assert "e+" not in result.stdout and "e-" not in result.stdout


def test_tables_fit_80_columns_without_cutting_a_number_or_an_id(tmp_path: Path) -> None:
    book = _small_book(tmp_path)
    for args in (
        ["margin", str(book)],
        ["margin", str(book), "--levels"],
        ["margin", str(book), "--account", "vol-seller"],
        ["margin", str(book), "--model", "portfolio", "--preset", "deribit-pm"],
    ):
        result = runner.invoke(app, args, env={"COLUMNS": "80"})
        assert result.exit_code == 0, result.output
        assert "…" not in result.stdout, "\n" + result.stdout
        assert max(len(line) for line in result.stdout.splitlines()) <= 80, "\n" + result.stdout
        for account in ("near-liquidation", "vol-seller", "tiny-and-huge"):
            assert account in result.stdout or "--account" in args
        figures = re.sub(r"\S*/\S*", "", result.stdout)  # the title's path (pytest-0/...) is no figure
        assert "-0.00" not in figures and not re.search(r"(?<![\d,.])-0(?![\d,.])", figures)


def test_the_title_names_the_model_and_the_preset() -> None:
    portfolio = runner.invoke(app, ["margin", str(DESK), "--model", "portfolio", "--preset", "span"])
    assert "portfolio margin (span) ·" in portfolio.stdout
    tiers = runner.invoke(app, ["margin", str(DESK), "--preset", "binance"])
    assert "cross margin (binance) ·" in tiers.stdout

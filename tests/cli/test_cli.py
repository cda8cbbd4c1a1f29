"""The command line: margin (table, --json, --model, --account), schema, and exit code 2 with the
file, field and problem on a bad book, before anything is computed."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.cli.main import app
from crossmargin.engine import margin_run
from tests.adapters.files.bad_books import BAD_BOOKS, DESK, DESK_CSV, BadBook

runner = CliRunner()

ACCOUNTS = ("basis-trader", "vol-seller", "directional", "near-liquidation")


def test_margin_prints_a_table_of_every_account() -> None:
    result = runner.invoke(app, ["margin", str(DESK)])
    assert result.exit_code == 0, result.output
    for account_id in ACCOUNTS:
        assert account_id in result.stdout
    assert "cross margin" in result.stdout
    assert "2025-12-30T17:31:15Z" in result.stdout


@pytest.mark.parametrize("model", ["cross", "isolated"])
def test_margin_json_report(model: str) -> None:
    result = runner.invoke(app, ["margin", str(DESK), "--model", model, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert set(report) == {"model", "preset", "valuation_time", "book", "accounts"}
    assert report["model"] == model
    assert [a["account_id"] for a in report["accounts"]] == list(ACCOUNTS)
    for account in report["accounts"]:
        assert {
            "account_id",
            "equity_usd",
            "initial_margin_usd",
            "maintenance_margin_usd",
            "available_usd",
            "margin_ratio",
            "positions",
            "collateral",
        } <= set(account)
        for position in account["positions"]:
            assert {
                "instrument_id",
                "quantity",
                "value_usd",
                "initial_margin_usd",
                "maintenance_margin_usd",
            } <= set(position)
        for collateral in account["collateral"]:
            assert set(collateral) == {"asset", "balance", "value_usd", "haircut"}
    near = next(a for a in report["accounts"] if a["account_id"] == "near-liquidation")
    if model == "cross":
        assert 0.85 < near["margin_ratio"] < 1.0


def test_margin_one_account_shows_its_positions() -> None:
    result = runner.invoke(app, ["margin", str(DESK), "--account", "vol-seller"])
    assert result.exit_code == 0, result.output
    assert "vol-seller: positions and collateral" in result.stdout
    assert "BTC-30JAN26-80000-P" in result.stdout
    assert "basis-trader" not in result.stdout


def test_margin_csv_example() -> None:
    result = runner.invoke(app, ["margin", str(DESK_CSV), "--json"])
    assert result.exit_code == 0, result.output
    ids = [a["account_id"] for a in json.loads(result.stdout)["accounts"]]
    assert ids == ["hedger", "perp-trader", "put-seller"]


def test_unknown_model_exits_2() -> None:
    result = runner.invoke(app, ["margin", str(DESK), "--model", "no-such-model"])
    assert result.exit_code == 2
    assert "unknown model 'no-such-model'" in result.stderr


def test_unknown_account_exits_2() -> None:
    result = runner.invoke(app, ["margin", str(DESK), "--account", "nobody"])
    assert result.exit_code == 2
    assert "unknown account 'nobody'" in result.stderr


def test_missing_book_exits_2(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.yaml"
    result = runner.invoke(app, ["margin", str(missing)])
    assert result.exit_code == 2
    assert str(missing) in result.stderr and "cannot read" in result.stderr


@pytest.mark.parametrize("case", BAD_BOOKS, ids=[c.name for c in BAD_BOOKS])
def test_bad_book_exits_2_naming_file_and_field_and_computes_nothing(
    case: BadBook, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[object] = []
    monkeypatch.setattr(margin_run, "run_margin", lambda *args, **kwargs: calls.append(args))
    book_path, named_path = case.write(tmp_path)
    result = runner.invoke(app, ["margin", str(book_path), "--json"])
    assert result.exit_code == 2, result.output
    assert calls == []  # nothing computed
    assert result.stdout == ""  # no partial report
    message = " ".join(result.stderr.split())  # undo any terminal wrapping
    assert f"error: {named_path}: {case.field}: " in message  # field paths survive Rich (no markup)
    assert case.problem in message


def test_schema_prints_valid_json_schema() -> None:
    result = runner.invoke(app, ["schema"])
    assert result.exit_code == 0, result.output
    schema = json.loads(result.stdout)
    assert {"assets", "instruments", "market", "accounts"} <= set(schema["properties"])
    assert schema["$schema"].startswith("https://json-schema.org/")
    assert "BookModel" not in schema.get("$defs", {})  # the root is the book itself
    instrument = schema["$defs"]["InstrumentModel"]["properties"]
    assert {"contract_size", "mark_price", "implied_vol", "forward_price", "margin"} <= set(instrument)

"""`crossmargin calibrate`: JSON and Markdown outputs on the shared history, bad windows exit 2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.cli.main import app
from tests.conftest import shared_data_dir

runner = CliRunner()


def test_calibrate_json_and_markdown(tmp_path: Path) -> None:
    shared_data_dir()
    out = tmp_path / "evidence.md"
    result = runner.invoke(app, ["calibrate", "--symbol", "ETH", "--json", "--markdown", str(out)])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (eth,) = payload["assets"]
    assert eth["symbol"] == "ETH"
    assert eth["initial_evidence"]["fit"]["coverage"] >= 0.99
    text = out.read_text(encoding="utf-8")
    assert "### ETH" in text and "IM rate (2-day, either side)" in text
    assert f"{eth['initial_rate']:.2%}" in text


def test_calibrate_table() -> None:
    shared_data_dir()
    result = runner.invoke(app, ["calibrate", "--symbol", "BTC", "--coverage", "0.975"])
    assert result.exit_code == 0, result.output
    assert "BTC" in result.stdout and "97.5% of 2-day losses" in result.stdout


def test_calibrate_bad_window_exits_2(tmp_path: Path) -> None:
    result = runner.invoke(app, ["calibrate", "--fit", "2018", "--markdown", str(tmp_path / "x.md")])
    assert result.exit_code == 2
    assert "fit: expected FIRST:LAST" in result.output
    assert not (tmp_path / "x.md").exists()
    result = runner.invoke(app, ["calibrate", "--fit", "2020-01-01:2023-06-30"])
    assert result.exit_code == 2
    assert "overlaps" in result.output


def _accounts(path: Path) -> dict[str, dict[str, object]]:
    result = runner.invoke(app, ["margin", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return {a["account_id"]: a for a in json.loads(result.stdout)["accounts"]}


def test_written_book_margins_under_the_calibrated_parameters(tmp_path: Path) -> None:
    """calibrate --book --write-book: the written book loads with the normal loader, and margining
    it gives the calibrated ETH haircut on ETH collateral (50 ETH: the first haircut tier) and the
    calibrated first-tier IM and MM rates on the ETH perpetual (150 ETH, ~0.45 M USD of notional:
    inside the first tier)."""
    shared_data_dir()
    out = tmp_path / "calibrated" / "desk.yaml"
    result = runner.invoke(
        app,
        ["calibrate", "--symbol", "ETH", "--json", "--book", "examples/desk.yaml", "--write-book", str(out)],
    )
    assert result.exit_code == 0, result.output
    (eth,) = json.loads(result.stdout)["assets"]
    accounts = _accounts(out)
    directional = accounts["directional"]
    (collateral,) = [c for c in directional["collateral"] if c["asset"] == "ETH"]  # type: ignore[attr-defined]
    assert collateral["haircut"] == pytest.approx(eth["haircut"], rel=1e-12)
    (perp,) = [p for p in directional["positions"] if p["instrument_id"] == "ETH-USDC-PERP"]  # type: ignore[attr-defined]
    notional = 150 * 2978.73  # contract size 1 ETH, mark = index
    tier = eth["tiers"][0]
    assert notional < tier["ceiling_usd"]
    assert perp["initial_margin_usd"] == pytest.approx(notional * tier["initial_rate"], rel=1e-9)
    assert perp["maintenance_margin_usd"] == pytest.approx(notional * eth["maintenance_rate"], rel=1e-9)
    # BTC was not calibrated: its haircut is the source book's (5 % on the first 10 BTC).
    (btc,) = [c for c in accounts["basis-trader"]["collateral"] if c["asset"] == "BTC"]  # type: ignore[attr-defined]
    assert btc["haircut"] == pytest.approx(0.05, rel=1e-12)


def test_write_book_refuses_to_overwrite_and_needs_a_book(tmp_path: Path) -> None:
    out = tmp_path / "existing.yaml"
    out.write_text("keep me\n", encoding="utf-8")
    result = runner.invoke(app, ["calibrate", "--book", "examples/desk.yaml", "--write-book", str(out)])
    assert result.exit_code == 2
    assert "exists; refusing to overwrite" in result.output
    assert out.read_text(encoding="utf-8") == "keep me\n"
    result = runner.invoke(app, ["calibrate", "--write-book", str(tmp_path / "new.yaml")])
    assert result.exit_code == 2
    assert "needs --book" in result.output
    assert not (tmp_path / "new.yaml").exists()

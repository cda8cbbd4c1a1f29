"""The command line for portfolio margin: `margin --model portfolio --preset`, `explain` and
`compare` on the example book, and exit code 2 naming `preset` for an unknown preset."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from typer.testing import CliRunner

from crossmargin.cli.main import app
from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, TIER_PRESETS
from tests.adapters.files.bad_books import DESK

runner = CliRunner()

PRESETS = tuple(PORTFOLIO_PRESETS)


def _json(args: list[str]) -> dict[str, Any]:
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report: dict[str, Any] = json.loads(result.stdout)
    return report


def _shape(report: dict[str, Any]) -> tuple[set[str], set[str], set[str], set[str]]:
    """Keys of the report, of its accounts, of their positions and of their collateral rows."""
    accounts = report["accounts"]
    return (
        set(report),
        set().union(*(set(a) for a in accounts)),
        set().union(*(set(p) for a in accounts for p in a["positions"])),
        set().union(*(set(c) for a in accounts for c in a["collateral"])),
    )


@pytest.fixture(scope="module")
def cross_report() -> dict[str, Any]:
    return _json(["margin", str(DESK), "--model", "cross", "--json"])


@pytest.mark.parametrize("preset", PRESETS)
def test_margin_portfolio_preset_has_the_cross_report_keys(preset: str, cross_report: dict[str, Any]) -> None:
    report = _json(["margin", str(DESK), "--model", "portfolio", "--preset", preset, "--json"])
    assert _shape(report) == _shape(cross_report)
    assert report["model"] == "portfolio"
    assert report["preset"] == preset
    ids = [a["account_id"] for a in report["accounts"]]
    assert ids == [a["account_id"] for a in cross_report["accounts"]]
    for account in report["accounts"]:
        assert account["initial_margin_usd"] >= account["maintenance_margin_usd"] >= 0.0
        # Equity does not depend on the model.
        cross = next(a for a in cross_report["accounts"] if a["account_id"] == account["account_id"])
        assert account["equity_usd"] == pytest.approx(cross["equity_usd"], rel=1e-12)


def test_explain_vol_seller_json() -> None:
    report = _json(["explain", str(DESK), "--account", "vol-seller", "--json"])
    assert report["account_id"] == "vol-seller"
    assert {"index", "label", "weight", "price_moves", "total_pnl_usd"} <= set(report["worst_scenario"])
    assert report["positions"]
    for position in report["positions"]:
        assert {"instrument_id", "quantity", "scenario_pnl_usd", "contribution_usd"} <= set(position)
        assert isinstance(position["scenario_pnl_usd"], float)
    assert isinstance(report["addons"], dict) and report["addons"]
    # The worst scenario's total P&L is the sum of the items' P&L there.
    items = sum(p["scenario_pnl_usd"] for p in report["positions"]) + sum(
        c["scenario_pnl_usd"] for c in report["collateral"]
    )
    assert items == pytest.approx(report["worst_scenario"]["total_pnl_usd"], rel=1e-9, abs=1e-6)


@pytest.mark.parametrize("preset", PRESETS)
def test_explain_each_preset(preset: str) -> None:
    report = _json(["explain", str(DESK), "--account", "vol-seller", "--preset", preset, "--json"])
    assert report["preset"] == preset
    assert report["initial_margin_usd"] >= report["maintenance_margin_usd"] >= 0.0


@pytest.mark.parametrize("preset", ["deribit-pm", "span"])
def test_explain_of_a_grid_summed_over_groups_shows_each_group(preset: str) -> None:
    """vol-seller holds BTC and ETH options: under a preset with a scenario group per underlying
    the grid is the sum of each group's worst loss (119,845.49 + 40,546.23 under deribit-pm), and
    the explanation says so, rather than one scenario whose P&L is a part of the grid."""
    report = _json(["explain", str(DESK), "--account", "vol-seller", "--preset", preset, "--json"])
    losing = [g for g in report["groups"] if g["loss_usd"] > 0.0]
    assert len(losing) == 2
    assert sum(g["loss_usd"] for g in losing) == pytest.approx(report["grid_usd"], rel=1e-12)
    assert -report["worst_scenario"]["total_pnl_usd"] < report["grid_usd"]
    result = runner.invoke(
        app, ["explain", str(DESK), "--account", "vol-seller", "--preset", preset], env={"COLUMNS": "200"}
    )
    assert result.exit_code == 0, result.output
    assert "the sum of each scenario group's worst loss" in result.stdout
    for g in losing:
        assert g["label"] in result.stdout
        assert f"{g['loss_usd']:,.2f}" in result.stdout


def test_explain_prints_tables() -> None:
    result = runner.invoke(app, ["explain", str(DESK), "--account", "vol-seller", "--scenarios"])
    assert result.exit_code == 0, result.output
    assert "share of grid USD" in result.stdout
    assert "all scenarios" in result.stdout


def test_compare_basis_trader_json() -> None:
    report = _json(["compare", str(DESK), "--account", "basis-trader", "--json"])
    assert report["account_id"] == "basis-trader"
    rows = [(r["model"], r["preset"]) for r in report["rows"]]
    expected = (
        [("isolated", None), ("cross", None)]
        + [("cross", tier) for tier in TIER_PRESETS]
        + [("portfolio", name) for name in PRESETS]
        + [("sensitivity", None)]
    )
    # These come first, in this order; later models (e.g. history VaR) may follow.
    assert rows[: len(expected)] == expected
    assert ("cross", "binance") in rows and ("cross", "hyperliquid") in rows
    isolated = report["rows"][0]["initial_margin_usd"]
    for row in report["rows"]:
        assert {
            "initial_margin_usd",
            "maintenance_margin_usd",
            "saving_vs_isolated_usd",
            "saving_vs_isolated_pct",
        } <= set(row)
        assert row["saving_vs_isolated_usd"] == pytest.approx(isolated - row["initial_margin_usd"], rel=1e-12)
    assert report["rows"][0]["saving_vs_isolated_usd"] == 0.0


def test_compare_prints_a_table() -> None:
    result = runner.invoke(app, ["compare", str(DESK), "--account", "basis-trader"])
    assert result.exit_code == 0, result.output
    for name in PRESETS:
        assert name in result.stdout


@pytest.mark.parametrize(
    "args",
    [
        ["margin", str(DESK), "--model", "portfolio", "--preset", "nope", "--json"],
        ["explain", str(DESK), "--account", "vol-seller", "--preset", "nope", "--json"],
        ["margin", str(DESK), "--model", "cross", "--preset", "nope"],
    ],
    ids=["margin-portfolio", "explain", "margin-cross-tiers"],
)
def test_unknown_preset_exits_2_naming_preset(args: list[str]) -> None:
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert result.stdout == ""
    message = " ".join(result.stderr.split())
    assert "error: preset: unknown" in message
    assert "'nope'" in message


def test_explain_unknown_account_exits_2() -> None:
    result = runner.invoke(app, ["explain", str(DESK), "--account", "nobody", "--json"])
    assert result.exit_code == 2
    assert "unknown account 'nobody'" in result.stderr


def _desk_with_portfolio_block(tmp_path: Path, block: dict[str, Any]) -> Path:
    document = yaml.safe_load(DESK.read_text(encoding="utf-8"))
    document["model"] = {**document.get("model", {}), "portfolio": block}
    path = tmp_path / f"book-{len(list(tmp_path.iterdir()))}.yaml"
    path.write_text(yaml.safe_dump(document), encoding="utf-8")
    return path


def _initial_margin_by_account(args: list[str]) -> dict[str, float]:
    report = _json(["margin", *args, "--model", "portfolio", "--json"])
    return {a["account_id"]: a["initial_margin_usd"] for a in report["accounts"]}


# Issue 14: `--preset NAME` once replaced the book's whole model.portfolio block, so a book's
# numeraire and add-ons vanished whenever the flag was given, even naming the book's own preset.
OVERRIDES: dict[str, Any] = {"numeraire": "BTC", "addons": {"short_option_rate": 0.05}}


def test_preset_flag_keeps_the_books_numeraire_and_addons(tmp_path: Path) -> None:
    book = str(_desk_with_portfolio_block(tmp_path, {"preset": "deribit-pm", **OVERRIDES}))
    plain = _initial_margin_by_account([str(_desk_with_portfolio_block(tmp_path, {"preset": "deribit-pm"}))])
    from_book = _initial_margin_by_account([book])
    with_flag = _initial_margin_by_account([book, "--preset", "deribit-pm"])
    # The overrides (losses in BTC, a 5 % short-option add-on) move the vol seller's number ...
    assert from_book["vol-seller"] != pytest.approx(plain["vol-seller"], rel=0.01)
    # ... and naming the book's own preset on the command line changes nothing.
    assert with_flag == from_book


def test_preset_flag_naming_another_preset_keeps_the_books_overrides(tmp_path: Path) -> None:
    book = str(_desk_with_portfolio_block(tmp_path, {"preset": "deribit-pm", **OVERRIDES}))
    with_flag = _initial_margin_by_account([book, "--preset", "paradex-pm"])
    # The flag swaps the preset only: the same numbers as a book naming paradex-pm with the
    # same overrides, and not those of the plain paradex-pm preset.
    paradex_book = str(_desk_with_portfolio_block(tmp_path, {"preset": "paradex-pm", **OVERRIDES}))
    assert with_flag == _initial_margin_by_account([paradex_book])
    plain = _initial_margin_by_account([str(DESK), "--preset", "paradex-pm"])
    assert with_flag["vol-seller"] != pytest.approx(plain["vol-seller"], rel=0.01)

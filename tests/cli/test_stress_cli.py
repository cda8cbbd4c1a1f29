"""crossmargin stress / cascade / synth: JSON reports, charts, and exit code 2 on bad input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.cli.main import app
from tests.conftest import shared_data_dir

runner = CliRunner()
DESK = Path(__file__).resolve().parents[2] / "examples" / "desk.yaml"


def test_stress_json_on_a_hypothetical_shock(tmp_path: Path) -> None:
    chart = tmp_path / "stress.png"
    result = runner.invoke(
        app,
        [
            "stress",
            str(DESK),
            "--no-historical",
            "--shock",
            "BTC=-0.3,ETH=-0.3,SOL=-0.3",
            "--fund",
            "100000",
            "--json",
            "--chart",
            str(chart),
        ],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    (scenario,) = report["scenarios"]
    assert scenario["under_maintenance"] >= 1 and scenario["liquidated_notional_usd"] > 0
    assert scenario["fund_start_usd"] == 100000.0
    assert scenario["fund_used_usd"] + scenario["fund_end_usd"] >= 100000.0 - 1e-6
    assert chart.stat().st_size > 10_000


def test_stress_bad_shock_exits_2_naming_the_option() -> None:
    result = runner.invoke(app, ["stress", str(DESK), "--no-historical", "--shock", "BTC=-30%"])
    assert result.exit_code == 2
    assert "--shock" in result.output and "SYMBOL=FRACTION" in result.output
    result = runner.invoke(app, ["stress", str(DESK), "--no-historical", "--shock", "DOGE=-0.3"])
    assert result.exit_code == 2 and "DOGE" in result.output


@pytest.mark.data
def test_synth_then_cascade_compare_policies(tmp_path: Path) -> None:
    shared_data_dir()  # the cascade's market depth comes from the shared daily volumes
    book = tmp_path / "book"
    assert (
        runner.invoke(app, ["synth", "--accounts", "2000", "--out", str(book), "--seed", "3"]).exit_code == 0
    )
    result = runner.invoke(
        app,
        [
            "cascade",
            str(book),
            "--shock",
            "BTC=-0.12,ETH=-0.16,SOL=-0.31",
            "--steps",
            "2",
            "--depth-multiplier",
            "0.1",
            "--volume-share",
            "0.0001",
            "--fund",
            "100000",
            "--compare-policies",
            "--json",
        ],
    )
    assert result.exit_code == 0, result.output
    reports = json.loads(result.stdout)
    assert len(reports) == 10 and {r["policy"] for r in reports} >= {
        "full/queue",
        "partial/pro_rata",
        "full/no-adl",
    }
    assert all(r["accounts"] == 2000 for r in reports)
    assert max(r["path"][-1]["step"] for r in reports) == 1  # two steps of the price path

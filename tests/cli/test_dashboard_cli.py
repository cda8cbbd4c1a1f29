"""`crossmargin dashboard`'s own flags: a port past 65535 (it was taken modulo 2^16) and an
insurance fund that is not an amount are refused, exit 2."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from crossmargin.cli.main import app

DESK = str(Path(__file__).resolve().parents[2] / "examples" / "desk.yaml")


def test_dashboard_refuses_a_port_past_65535_exit_2() -> None:
    result = CliRunner().invoke(app, ["dashboard", DESK, "--port", "70000"])
    assert result.exit_code == 2, result.output
    assert "--port" in result.output and "65535" in result.output
    assert "Traceback" not in result.output


def test_dashboard_refuses_an_insurance_fund_that_is_not_an_amount_exit_2() -> None:
    """It served a dashboard over a NaN fund before."""
    result = CliRunner().invoke(app, ["dashboard", DESK, "--insurance-usd", "nan"])
    assert result.exit_code == 2, result.output
    assert "error: --insurance-usd: must be finite and >= 0 USD, got nan" in " ".join(result.stderr.split())

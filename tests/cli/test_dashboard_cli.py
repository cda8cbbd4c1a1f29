"""`crossmargin dashboard`'s own flags: a port past 65535 is refused, not taken modulo 2^16."""

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

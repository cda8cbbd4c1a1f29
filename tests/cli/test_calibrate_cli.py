"""`crossmargin calibrate`: JSON and Markdown outputs on the shared history, bad windows exit 2."""

from __future__ import annotations

import json
from pathlib import Path

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

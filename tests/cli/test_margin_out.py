"""`crossmargin margin --out`: the report file equals `--json`'s report; bad targets exit 2 with
the problem named, before any work and without writing anything."""

from __future__ import annotations

import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from crossmargin.cli.main import app
from tests.adapters.files.bad_books import DESK, DESK_CSV

runner = CliRunner()


def _json_report(*args: str) -> dict[str, object]:
    result = runner.invoke(app, ["margin", *args, "--json"])
    assert result.exit_code == 0, result.output
    report: dict[str, object] = json.loads(result.stdout)
    return report


@pytest.mark.parametrize("model", ["cross", "portfolio"])
def test_out_json_holds_the_json_report(tmp_path: Path, model: str) -> None:
    out = tmp_path / "report.json"
    result = runner.invoke(app, ["margin", str(DESK_CSV), "--model", model, "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert result.stdout == ""
    assert json.loads(out.read_text()) == _json_report(str(DESK_CSV), "--model", model)


def test_out_parquet_holds_the_json_reports_accounts(tmp_path: Path) -> None:
    out = tmp_path / "report.parquet"
    result = runner.invoke(app, ["margin", str(DESK), "--out", str(out)])
    assert result.exit_code == 0, result.output
    expected = _json_report(str(DESK))["accounts"]
    accounts = pq.read_table(out).to_pylist()
    positions = pq.read_table(tmp_path / "report.positions.parquet").to_pylist()
    collateral = pq.read_table(tmp_path / "report.collateral.parquet").to_pylist()
    assert [a["account_id"] for a in accounts] == [a["account_id"] for a in expected]  # type: ignore[index]
    assert [a["equity_usd"] for a in accounts] == [a["equity_usd"] for a in expected]  # type: ignore[index]
    assert len(positions) == sum(len(a["positions"]) for a in expected)  # type: ignore[index,arg-type]
    assert len(collateral) == sum(len(a["collateral"]) for a in expected)  # type: ignore[index,arg-type]


def test_out_json_with_levels_holds_the_levels(tmp_path: Path) -> None:
    out = tmp_path / "levels.json"
    result = runner.invoke(app, ["margin", str(DESK), "--levels", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert json.loads(out.read_text()) == _json_report(str(DESK), "--levels")


@pytest.mark.parametrize(
    ("name", "extra", "problem"),
    [
        ("report.txt", [], "suffix '.txt'"),
        ("missing/report.json", [], "does not exist"),
        ("report.parquet", ["--levels"], "no --levels or --prices"),
    ],
)
def test_bad_out_exits_2_naming_the_problem_and_writes_nothing(
    tmp_path: Path, name: str, extra: list[str], problem: str
) -> None:
    result = runner.invoke(app, ["margin", str(DESK), "--out", str(tmp_path / name), *extra])
    assert result.exit_code == 2
    assert "--out" in result.stderr and problem in result.stderr
    assert "Traceback" not in result.output
    assert list(tmp_path.iterdir()) == []


def test_out_naming_a_directory_exits_2(tmp_path: Path) -> None:
    (tmp_path / "report.json").mkdir()
    result = runner.invoke(app, ["margin", str(DESK), "--out", str(tmp_path / "report.json")])
    assert result.exit_code == 2
    assert "is a directory" in result.stderr
    assert [p.name for p in tmp_path.iterdir()] == ["report.json"]


def test_bad_out_is_refused_before_the_book_is_read(tmp_path: Path) -> None:
    """The --out check comes first: a missing book is not even opened."""
    result = runner.invoke(app, ["margin", str(tmp_path / "no-book.yaml"), "--out", str(tmp_path / "r.csv")])
    assert result.exit_code == 2
    assert "--out" in result.stderr

"""`--out` targets: the suffix chooses the format, bad targets are refused before any work, and a
failed write leaves neither a partial report nor a temporary file (and an old report intact)."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from crossmargin.adapters.files import load_book
from crossmargin.adapters.files.report_file import report_target, write_report
from crossmargin.engine.margin_run import run_margin
from crossmargin.engine.report_columns import margin_columns
from crossmargin.errors import InputError
from tests.adapters.files.bad_books import DESK


def test_the_suffix_chooses_the_format(tmp_path: Path) -> None:
    assert report_target(tmp_path / "r.json").format == "json"
    parquet = report_target(tmp_path / "r.PARQUET")
    assert parquet.format == "parquet"
    assert [p.name for p in parquet.paths] == ["r.positions.PARQUET", "r.collateral.PARQUET", "r.PARQUET"]


@pytest.mark.parametrize(
    ("name", "problem"),
    [("report.csv", "suffix '.csv'"), ("report", "no suffix"), ("missing/report.json", "does not exist")],
)
def test_unusable_targets_are_refused_naming_the_problem(tmp_path: Path, name: str, problem: str) -> None:
    with pytest.raises(InputError) as error:
        report_target(tmp_path / name)
    assert error.value.field == "--out"
    assert problem in error.value.problem


def test_a_directory_is_refused(tmp_path: Path) -> None:
    (tmp_path / "report.json").mkdir()
    with pytest.raises(InputError, match="is a directory"):
        report_target(tmp_path / "report.json")
    (tmp_path / "r.positions.parquet").mkdir()  # a side table's name taken by a directory
    with pytest.raises(InputError, match=re.escape("r.positions.parquet: is a directory")):
        report_target(tmp_path / "r.parquet")


@pytest.mark.parametrize("name", ["report.json", "report.parquet"])
def test_a_failed_write_leaves_the_old_report_and_no_temporary_file(tmp_path: Path, name: str) -> None:
    columns = margin_columns(run_margin(load_book(DESK)))
    target = report_target(tmp_path / name)
    for path in target.paths:
        path.write_text("old report")

    def interrupted(done: int) -> None:
        raise KeyboardInterrupt  # e.g. Ctrl-C after the first chunk

    with pytest.raises(KeyboardInterrupt):
        write_report(columns, target, progress=interrupted)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in target.paths)
    assert all(p.read_text() == "old report" for p in target.paths)

    write_report(columns, target)  # and a run that completes replaces every file
    assert all(p.read_bytes()[:4] in (b"PAR1", b'{"mo') for p in target.paths)
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in target.paths)

"""Where a command writes: the staging directory of a written-whole --out (beside the target,
refused naming --out when it cannot be made) and the check of a file path before any work."""

from __future__ import annotations

from pathlib import Path

import pytest

from crossmargin.adapters.files.staging import check_writable, staging_beside
from crossmargin.errors import InputError


def test_staging_is_a_hidden_empty_sibling_its_parent_made(tmp_path: Path) -> None:
    out = tmp_path / "new" / "trail"
    staging = staging_beside(out)
    assert staging.parent == out.parent and staging.name.startswith(".trail.")
    assert staging.is_dir() and list(staging.iterdir()) == []
    assert not out.exists()


def test_staging_under_a_file_is_refused_naming_out(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError) as refused:
        staging_beside(tmp_path / "afile" / "trail")
    assert refused.value.field == "--out"
    assert refused.value.problem.startswith(f"{tmp_path / 'afile' / 'trail'}: cannot write: ")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["afile"]


def test_check_writable_leaves_nothing_and_makes_no_directory(tmp_path: Path) -> None:
    check_writable(tmp_path / "a" / "b" / "chart.png", "--chart")  # the nearest existing: tmp_path
    assert list(tmp_path.iterdir()) == []


def test_check_writable_under_a_file_is_refused_naming_the_flag(tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("x")
    with pytest.raises(InputError) as refused:
        check_writable(tmp_path / "afile" / "chart.png", "--chart")
    assert refused.value.field == "--chart"
    assert "cannot write" in refused.value.problem

"""The progress bar: drawn on a terminal, never on a pipe (stdout stays the report alone)."""

from __future__ import annotations

import io
import json
from pathlib import Path

from typer.testing import CliRunner

from crossmargin.cli.main import app
from crossmargin.cli.progress import stages
from tests.adapters.files.bad_books import DESK_CSV


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_stages_draw_on_a_terminal() -> None:
    terminal = _Terminal()
    with stages(terminal) as progress:
        assert progress.shown
        progress.stage("writing report.parquet", total=10)
        progress.advance_to(4)
    assert "writing report.parquet" in terminal.getvalue()


def test_stages_draw_nothing_on_a_pipe() -> None:
    pipe = io.StringIO()
    with stages(pipe) as progress:
        assert not progress.shown
        progress.stage("loading the book")
        progress.advance_to(1)
    assert pipe.getvalue() == ""


def test_margin_on_a_pipe_writes_only_the_report(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["margin", str(DESK_CSV), "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr == ""
    json.loads(result.stdout)  # nothing but the report on stdout

"""Issue 14, install weight: `arch` (GARCH presets) and `matplotlib` (back-test charts) are pip
extras, not core dependencies. Without them the main job runs, and a command that needs one stops
with exit 2 naming the pip command, before any work. `sys.modules[name] = None` makes an import
of `name` raise ImportError, as on an install without the extra."""

from __future__ import annotations

import sys
import tomllib
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.cli.main import app
from tests.conftest import shared_data_dir

ROOT = Path(__file__).resolve().parents[2]
DESK = str(ROOT / "examples" / "desk.yaml")
runner = CliRunner()


@pytest.fixture
def without_extras(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("arch", "arch.univariate", "matplotlib", "matplotlib.pyplot"):
        monkeypatch.setitem(sys.modules, name, None)


def test_arch_and_matplotlib_are_extras_not_core_dependencies() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    core = " ".join(project["dependencies"])
    assert "arch" not in core and "matplotlib" not in core
    extras = project["optional-dependencies"]
    assert [d.split(">")[0] for d in extras["var"]] == ["arch"]
    assert [d.split(">")[0] for d in extras["charts"]] == ["matplotlib"]
    assert any(d.startswith("crossmargin[") and "var" in d and "charts" in d for d in extras["test"])


@pytest.mark.usefixtures("without_extras")
def test_the_main_job_runs_without_the_extras() -> None:
    result = runner.invoke(app, ["margin", DESK, "--json"])
    assert result.exit_code == 0, result.output


@pytest.mark.usefixtures("without_extras")
def test_a_garch_preset_without_arch_names_the_pip_command() -> None:
    shared_data_dir()
    result = runner.invoke(app, ["margin", DESK, "--model", "var", "--preset", "fhs-garch-es975"])
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output and result.stdout == ""
    message = " ".join(result.stderr.split())
    assert message.startswith("error: var: GARCH volatility"), message
    assert "pip install 'crossmargin[var]'" in message


@pytest.mark.usefixtures("without_extras")
def test_backtest_charts_without_matplotlib_stop_before_the_walk(tmp_path: Path) -> None:
    out = tmp_path / "charts"
    book = str(ROOT / "examples" / "backtest.yaml")
    result = runner.invoke(
        app, ["backtest", book, "--out", str(out), "--from", "2024-01-01", "--to", "2024-01-10"]
    )
    assert result.exit_code == 2, result.output
    assert "pip install 'crossmargin[charts]'" in " ".join(result.stderr.split())
    assert result.stdout == "" and not out.exists()

"""Start-up: what `crossmargin --help` and `import crossmargin` load, the lazy commands, the
help-text names, `--levels` as an explicit stage, and where numba caches compiled kernels.

Imports are checked in fresh subprocesses (`sys.modules` after the command); no wall-clock limits
here (timings live in bench/bench_startup.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin import _numba_cache
from crossmargin.cli import names
from crossmargin.cli.main import LAZY_COMMANDS, app, load_command
from tests.adapters.files.bad_books import DESK
from tests.conftest import shared_data_dir

SRC = Path(__file__).resolve().parents[2] / "src"
HEAVY = ("numpy", "numba", "scipy", "pyarrow", "pandas", "pydantic", "arch", "matplotlib", "yaml")
LEVEL_KEYS = {
    "liquidation_price",
    "bankruptcy_price",
    "liquidation_price_below",
    "liquidation_price_above",
    "bankruptcy_price_below",
    "bankruptcy_price_above",
}

runner = CliRunner()


def _fresh_python(code: str, env: dict[str, str | None] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `code` in a new interpreter on this checkout's sources; env values None are unset."""
    merged = {**os.environ, "PYTHONPATH": str(SRC), **(env or {})}
    environment = {key: value for key, value in merged.items() if value is not None}
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        env=environment,
        check=False,
    )


def _loaded_after(code: str) -> set[str]:
    """Top-level packages of HEAVY that a fresh interpreter has imported after `code`."""
    done = _fresh_python(
        textwrap.dedent(code)
        + f"\nimport sys, json; print(json.dumps(sorted(m for m in {HEAVY!r} if m in sys.modules)))"
    )
    assert done.returncode == 0, done.stderr
    return set(json.loads(done.stdout.strip().splitlines()[-1]))


def test_help_imports_no_engine_dependency() -> None:
    code = """
        import sys
        from crossmargin.cli.main import app
        sys.argv = ["crossmargin", "--help"]
        try:
            app()
        except SystemExit:
            pass
    """
    assert _loaded_after(code) == set()


def test_margin_help_imports_no_engine_dependency() -> None:
    code = """
        import sys
        from crossmargin.cli.main import app
        sys.argv = ["crossmargin", "margin", "--help"]
        try:
            app()
        except SystemExit:
            pass
    """
    # Typer itself imports pydantic (typer._adapters) to coerce a command's option types.
    assert _loaded_after(code) <= {"pydantic"}


def test_help_lists_every_command_with_its_own_help() -> None:
    result = runner.invoke(app, ["--help"])
    assert result.exit_code == 0, result.output
    for name in ("margin", "explain", "compare", "schema", "backtest", "simulate", "oracle"):
        assert name in result.stdout


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_lazy_command_help_is_the_commands_own(name: str) -> None:
    assert LAZY_COMMANDS[name].help == load_command(name).help


@pytest.mark.parametrize("name", sorted(LAZY_COMMANDS))
def test_lazy_command_runs_when_invoked(name: str) -> None:
    result = runner.invoke(app, [name, "--help"])
    assert result.exit_code == 0, result.output
    assert "Usage" in result.stdout


def test_help_names_are_the_engines() -> None:
    from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, TIER_PRESETS
    from crossmargin.core.margin.var import VAR_PRESETS
    from crossmargin.engine.margin_run import MODELS

    assert names.MODELS == MODELS
    assert tuple(PORTFOLIO_PRESETS) == names.PORTFOLIO_PRESET_NAMES
    assert tuple(TIER_PRESETS) == names.TIER_PRESET_NAMES
    assert tuple(VAR_PRESETS) == names.VAR_PRESET_NAMES


def test_margin_report_has_no_levels_unless_asked() -> None:
    plain = runner.invoke(app, ["margin", str(DESK), "--json", "--account", "near-liquidation"])
    assert plain.exit_code == 0, plain.output
    (account,) = json.loads(plain.stdout)["accounts"]
    assert not LEVEL_KEYS & set(account)

    with_levels = runner.invoke(
        app, ["margin", str(DESK), "--json", "--levels", "--account", "near-liquidation"]
    )
    assert with_levels.exit_code == 0, with_levels.output
    (leveled,) = json.loads(with_levels.stdout)["accounts"]
    assert set(leveled) >= LEVEL_KEYS
    assert {k: v for k, v in leveled.items() if k not in LEVEL_KEYS} == account
    assert leveled["bankruptcy_price"]["BTC"] < leveled["liquidation_price"]["BTC"] < 88_528.93


def test_levels_table_shows_the_liquidation_prices() -> None:
    result = runner.invoke(app, ["margin", str(DESK), "--levels", "--account", "near-liquidation"])
    assert result.exit_code == 0, result.output
    header = next(line for line in result.stdout.splitlines() if line.lstrip().startswith("account"))
    assert "liquidation" in header  # a column of its own (the title says USD)
    assert "BTC " in result.stdout
    plain = runner.invoke(app, ["margin", str(DESK)])
    plain_header = next(line for line in plain.stdout.splitlines() if line.lstrip().startswith("account"))
    assert "liquidation" not in plain_header


def test_the_example_book_margins_under_every_model_without_numba() -> None:
    """Under the default CROSSMARGIN_KERNEL (auto), a small book's kernels run interpreted
    (core.jit): margin under every model, --levels, explain and the first what-if import no numba
    (its start-up alone is ~1.3 s; a cold compile ~14 s). The reports are the golden tests'."""
    book = str(DESK)
    runs = [
        ["margin", book, "--json", "--model", model, *preset]
        for model, preset in (
            ("cross", []),
            ("isolated", []),
            ("portfolio", ["--preset", "deribit-pm"]),
            ("sensitivity", []),
            ("var", ["--preset", "fhs-es975"]),
        )
    ]
    runs += [
        ["margin", book, "--json", "--levels", "--model", "portfolio"],
        ["explain", book, "--account", "vol-seller"],
    ]
    code = f"""
        import sys
        from typer.testing import CliRunner
        from crossmargin.cli.main import app
        from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioSnapshot
        from crossmargin.core.margin.presets import portfolio_preset
        from crossmargin.adapters.files import load_book
        from crossmargin.core import jit
        for args in {runs!r}:
            jit._Budget.spent_us = 0  # each command as in a fresh process (the budget is per process)
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
        jit._Budget.spent_us = 0
        loaded = load_book({book!r})
        snapshot = PortfolioSnapshot.build(PortfolioMargin(portfolio_preset("deribit-pm")), loaded.book, loaded.market)
        assert snapshot.what_if(0, instrument=1, quantity=2.0, price=88_000.0).initial_margin_usd > 0.0
        print("numba" in sys.modules, "llvmlite" in sys.modules)
    """
    shared_data_dir()  # the VaR run reads the shared price history
    done = _fresh_python(code, env={"CROSSMARGIN_KERNEL": None})
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["False", "False"]


def test_margin_explain_and_the_first_what_if_of_the_example_book_import_no_scipy() -> None:
    """Importing any scipy submodule costs ~0.3 s (its array-API layer walks numpy's namespace,
    importing numpy.f2py, numpy.ma and the rest): more than a margin run of the example book. The
    book's positions are scipy's CSR arrays without scipy (core.position_matrix) and N(x) is
    erfc's (pricing.normal_cdf) and sensitivities are summed with np.bincount, so margin under
    every model, explain and the first what-if import none of it; --levels (scipy's root finder)
    and compare (its Monte Carlo VaR row: scipy.special's normal quantiles) still do, on first
    use."""
    book = str(DESK)
    runs = [
        ["margin", book, "--json", "--model", "cross"],
        ["margin", book, "--model", "isolated"],
        ["margin", book, "--json", "--model", "portfolio", "--preset", "deribit-pm"],
        ["margin", book, "--json", "--model", "var", "--preset", "fhs-es975"],
        ["margin", book, "--json", "--model", "sensitivity"],
        ["explain", book, "--account", "vol-seller"],
    ]
    code = f"""
        import sys
        from typer.testing import CliRunner
        from crossmargin.cli.main import app
        from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioSnapshot
        from crossmargin.core.margin.presets import portfolio_preset
        from crossmargin.adapters.files import load_book
        for args in {runs!r}:
            result = CliRunner().invoke(app, args)
            assert result.exit_code == 0, (args, result.output)
        loaded = load_book({book!r})
        snapshot = PortfolioSnapshot.build(PortfolioMargin(portfolio_preset("deribit-pm")), loaded.book, loaded.market)
        assert snapshot.what_if(0, instrument=1, quantity=2.0, price=88_000.0).initial_margin_usd > 0.0
        print(sorted(m for m in sys.modules if m == "scipy" or m.startswith("scipy.")))
    """
    shared_data_dir()  # the VaR run reads the shared price history
    done = _fresh_python(code, env={"CROSSMARGIN_KERNEL": None})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip().splitlines()[-1] == "[]"


# ---- numba's kernel cache -------------------------------------------------------------------------


def test_cache_directory_is_left_alone_when_the_package_is_writable() -> None:
    assert _numba_cache.cache_directory({"HOME": "/home/u"}, writable=True) is None


def test_users_own_numba_cache_dir_wins() -> None:
    environ = {"HOME": "/home/u", "NUMBA_CACHE_DIR": "/mine"}
    assert _numba_cache.cache_directory(environ, writable=False) is None


def test_read_only_package_caches_under_xdg_cache_home() -> None:
    assert _numba_cache.cache_directory({"HOME": "/home/u"}, writable=False) == Path(
        "/home/u/.cache/crossmargin/numba"
    )
    assert _numba_cache.cache_directory(
        {"HOME": "/home/u", "XDG_CACHE_HOME": "/xdg"}, writable=False
    ) == Path("/xdg/crossmargin/numba")
    # A relative XDG_CACHE_HOME is invalid per the XDG spec: ignored.
    assert _numba_cache.cache_directory({"HOME": "/h", "XDG_CACHE_HOME": "rel"}, writable=False) == Path(
        "/h/.cache/crossmargin/numba"
    )


def test_read_only_install_writes_compiled_kernels_to_the_user_cache(tmp_path: Path) -> None:
    """A real subprocess, real numba: the package directory is reported not writable (os.access
    patched before `import crossmargin`), so its kernels must land in $XDG_CACHE_HOME/crossmargin/numba
    and load from there in the next process."""
    code = """
        import os, sys
        real_access = os.access
        package = PACKAGE

        def access(path, mode, **kwargs):
            if mode & os.W_OK and os.fspath(path).startswith(package):
                return False  # a read-only install
            return real_access(path, mode, **kwargs)

        os.access = access
        import crossmargin  # sets NUMBA_CACHE_DIR before numba is imported
        os.access = real_access
        import numpy as np
        import numba
        from crossmargin.core.position_runs import copy_general

        kernel = copy_general.compiled()  # numba.njit(cache=True)

        print(numba.config.CACHE_DIR)
        ints = np.zeros(2, dtype=np.int64)
        kernel(0, 2, ints, np.ones(2), ints, 0, ints.copy(), np.zeros(2), ints.copy())
        print(sum(kernel.stats.cache_hits.values()))
    """.replace("PACKAGE", repr(str(SRC / "crossmargin")))
    xdg = tmp_path / "xdg"
    env = {"XDG_CACHE_HOME": str(xdg), "NUMBA_CACHE_DIR": None}
    first = _fresh_python(code, env)
    assert first.returncode == 0, first.stderr
    cache_dir = xdg / "crossmargin" / "numba"
    assert first.stdout.splitlines()[0] == str(cache_dir)
    assert list(cache_dir.rglob("*.nbi")), "no kernel index written to the user cache"
    second = _fresh_python(code, env)
    assert second.returncode == 0, second.stderr
    assert int(second.stdout.splitlines()[1]) >= 1  # loaded from disk, not compiled


def test_levels_on_oracle_prices_add_the_same_six_keys(tmp_path: Path) -> None:
    from crossmargin.adapters.feeds import write_quotes
    from tests.engine.test_oracle_priced_run import DESK_PRICES, quotes

    path = tmp_path / "quotes.csv"
    write_quotes(quotes([(0, DESK_PRICES)]), path)
    args = ["margin", str(DESK), "--prices", str(path), "--json", "--account", "near-liquidation"]
    plain = runner.invoke(app, args)
    leveled = runner.invoke(app, [*args, "--levels"])
    assert plain.exit_code == 0 and leveled.exit_code == 0, plain.output + leveled.output
    (account,) = json.loads(plain.stdout)["accounts"]
    (with_levels,) = json.loads(leveled.stdout)["accounts"]
    assert not LEVEL_KEYS & set(account)
    assert set(with_levels) == set(account) | LEVEL_KEYS
    assert "price_status" in with_levels


# -- the console script's fast exit (cli.main.run) --------------------------------------------------

RUN = "import sys; from crossmargin.cli.main import run; sys.argv[0] = 'crossmargin'; run()"


def _console(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", RUN, *args],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
        check=False,
    )


def test_the_console_script_exits_with_the_commands_code_and_flushes_its_output(tmp_path: Path) -> None:
    done = _console("margin", str(DESK), "--json")
    assert done.returncode == 0, done.stderr
    report = json.loads(done.stdout)  # all of it: stdout flushed before the fast exit
    assert report["model"] == "cross" and len(report["accounts"]) == 4
    out = tmp_path / "report.json"
    done = _console("margin", str(DESK), "--out", str(out))
    assert done.returncode == 0, done.stderr
    assert json.loads(out.read_text())["accounts"] == report["accounts"]


def test_the_console_script_keeps_exit_code_2_and_the_message_for_bad_input(tmp_path: Path) -> None:
    done = _console("margin", str(tmp_path / "missing.yaml"))
    assert done.returncode == 2
    assert "missing.yaml" in done.stderr and "Traceback" not in done.stderr
    done = _console("margin", str(DESK), "--model", "bogus")
    assert done.returncode == 2 and "unknown model 'bogus'" in done.stderr


def test_the_console_script_runs_exit_handlers_before_its_fast_exit(tmp_path: Path) -> None:
    marker = tmp_path / "atexit.txt"
    code = (
        "import atexit, pathlib, sys; "
        f"atexit.register(pathlib.Path({str(marker)!r}).write_text, 'ran'); "
        "from crossmargin.cli.main import run; sys.argv = ['crossmargin', '--help']; run()"
    )
    done = subprocess.run(
        [sys.executable, "-c", code],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(SRC)},
    )
    assert done.returncode == 0 and "margin" in done.stdout
    assert marker.read_text() == "ran"


@pytest.mark.parametrize("group", [[], ["prove"], ["oracle"]], ids=["crossmargin", "prove", "oracle"])
def test_help_lists_each_command_on_one_row_when_it_fits(group: list[str]) -> None:
    """On a terminal wide enough, each command's first paragraph is listed whole on its own row:
    the docstrings' line breaks (wrapped at 100 columns in the source) used to break the listing
    mid-sentence into rows with no command name."""
    result = runner.invoke(app, [*group, "--help"], env={"TERMINAL_WIDTH": "400", "COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    start = next(i for i, line in enumerate(lines) if "Commands" in line)
    rows = [line for line in lines[start + 1 :] if line.startswith("│")]
    assert len(rows) >= 2
    continued = [row for row in rows if row[1:].startswith("  ")]  # no name in the first column
    assert not continued, continued

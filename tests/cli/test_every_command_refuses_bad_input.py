"""Issue 14: every command, given bad input, exits 2 with `error: FILE-or-ARGUMENT: FIELD-or-LINE:
problem` on stderr: no traceback, nothing on stdout, no file written. One row per (command, bad
input); each was a traceback or a silent run before."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from typer.testing import CliRunner

from crossmargin.cli.main import app

runner = CliRunner()
EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
DESK = str(EXAMPLES / "desk.yaml")
BACKTEST = str(EXAMPLES / "backtest.yaml")
QUOTES_HEADER = "time,source,asset,price_usd\n"
PATH_HEADER = "time,BTC,ETH,SOL\n"


def _write(directory: Path, name: str, data: str | bytes) -> str:
    path = directory / name
    if isinstance(data, bytes):
        path.write_bytes(data)
    else:
        path.write_text(data, encoding="utf-8")
    return str(path)


def _synth_dir(directory: Path) -> str:
    """A directory as `crossmargin synth` leaves one (its spec file is what marks it)."""
    synth = directory / "synth"
    synth.mkdir()
    (synth / "synth.json").write_text('{"n_accounts": 1}', encoding="utf-8")
    return str(synth)


# (id, args from a scratch directory, what the message must say)
Case = tuple[str, Callable[[Path], list[str]], str]

CASES: list[Case] = [
    # margin / explain / compare: the book and the flags
    ("margin-missing-book", lambda d: ["margin", str(d / "none.yaml")], "none.yaml: file: "),
    (
        "margin-latin1-book",
        lambda d: ["margin", _write(d, "b.yaml", b"valuation_time: caf\xe9\n")],
        "b.yaml: line 1: not UTF-8",
    ),
    ("margin-unknown-model", lambda d: ["margin", DESK, "--model", "magic"], "model: "),
    ("margin-unknown-account", lambda d: ["margin", DESK, "--account", "nobody"], "nobody"),
    (
        "margin-header-only-quotes",
        lambda d: ["margin", DESK, "--prices", _write(d, "q.csv", QUOTES_HEADER)],
        "q.csv: file: no quote rows",
    ),
    (
        "margin-text-price-quotes",
        lambda d: [
            "margin",
            DESK,
            "--prices",
            _write(d, "q.csv", QUOTES_HEADER + "2025-12-30T17:00:00Z,a,BTC,lots\n"),
        ],
        "q.csv: line 2, column price_usd: 'lots' is not a number",
    ),
    ("explain-unknown-account", lambda d: ["explain", DESK, "--account", "nobody"], "nobody"),
    (
        "explain-cross-model",
        lambda d: ["explain", DESK, "--account", "vol-seller", "--model", "cross"],
        "model: explain covers portfolio and var",
    ),
    (
        "margin-sensitivity-preset",
        lambda d: ["margin", DESK, "--model", "sensitivity", "--preset", "x"],
        "preset: the sensitivity model has no presets",
    ),
    ("compare-unknown-account", lambda d: ["compare", DESK, "--account", "nobody"], "nobody"),
    (
        "margin-synth-directory",  # said what it is and which commands read it
        lambda d: ["margin", _synth_dir(d)],
        "a directory written by `crossmargin synth`, read by stress and cascade",
    ),
    # --out that cannot be written (no traceback, nothing left beside it)
    (
        "synth-out-under-a-file",
        lambda d: ["synth", "--accounts", "10", "--out", str(Path(_write(d, "afile", "x")) / "book")],
        "--out: ",
    ),
    (
        "prove-out-under-a-file",
        lambda d: ["prove", "liabilities", DESK, "--out", str(Path(_write(d, "afile", "x")) / "proof")],
        "--out: ",
    ),
    (
        "simulate-out-not-writable",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            str(EXAMPLES / "price_path.csv"),
            "--out",
            "/proc/crossmargin-trail",
        ],
        "--out: /proc/crossmargin-trail: cannot write",
    ),
    (
        "backtest-out-not-writable",  # refused before the walk (minutes on a big book), not after it
        lambda d: ["backtest", BACKTEST, "--out", "/proc/crossmargin-charts"],
        "--out: /proc/crossmargin-charts: cannot write",
    ),
    (
        "stress-chart-not-writable",  # refused before the scenarios run, not after
        lambda d: ["stress", DESK, "--chart", "/proc/crossmargin-stress.png"],
        "--chart: /proc/crossmargin-stress.png: cannot write",
    ),
    (
        "cascade-chart-not-writable",
        lambda d: ["cascade", DESK, "--shock", "BTC=-0.2", "--chart", "/proc/crossmargin-cascade.png"],
        "--chart: /proc/crossmargin-cascade.png: cannot write",
    ),
    (
        "calibrate-markdown-not-writable",
        lambda d: ["calibrate", "--symbol", "BTC", "--markdown", "/proc/crossmargin-calibration.md"],
        "--markdown: /proc/crossmargin-calibration.md: cannot write",
    ),
    (
        "calibrate-write-book-not-writable",
        lambda d: [
            "calibrate",
            "--symbol",
            "BTC",
            "--book",
            DESK,
            "--write-book",
            "/proc/crossmargin-book.yaml",
        ],
        "--write-book: /proc/crossmargin-book.yaml: cannot write",
    ),
    # numbers that are not amounts (NaN was a traceback; a negative fund or a share above 1 ran)
    (
        "stress-nan-fund",
        lambda d: ["stress", DESK, "--fund", "nan"],
        "--fund: must be finite and >= 0 USD, got nan",
    ),
    ("cascade-negative-fund", lambda d: ["cascade", DESK, "--shock", "BTC=-0.2", "--fund", "-5"], "--fund: "),
    (
        "cascade-volume-share-above-one",
        lambda d: ["cascade", DESK, "--shock", "BTC=-0.2", "--volume-share", "2"],
        "--volume-share: must lie in (0, 1], got 2.0",
    ),
    (
        "stress-nan-vol-shift",
        lambda d: ["stress", DESK, "--shock", "BTC=-0.1", "--no-historical", "--vol", "BTC=nan"],
        "shock.vol_shift[BTC]: must be finite",
    ),
    # backtest: its arguments
    (
        "backtest-bad-day",
        lambda d: ["backtest", BACKTEST, "--from", "2022-13-45"],
        "backtest.first_day: '2022-13-45'",
    ),
    (
        "backtest-zero-horizon",
        lambda d: ["backtest", BACKTEST, "--horizon-days", "0"],
        "backtest.horizon_days",
    ),
    (
        "backtest-negative-horizon",
        lambda d: ["backtest", BACKTEST, "--horizon-days", "-3"],
        "backtest.horizon_days",
    ),
    (
        "backtest-coverage-above-one",
        lambda d: ["backtest", BACKTEST, "--coverage", "1.5"],
        "backtest.coverage",
    ),
    (
        "backtest-from-after-to",
        lambda d: ["backtest", BACKTEST, "--from", "2024-03-01", "--to", "2024-02-01"],
        "backtest.first_day: 2024-03-01 is after the last day 2024-02-01",
    ),
    (
        "backtest-outside-history",
        lambda d: ["backtest", BACKTEST, "--from", "2030-01-01", "--to", "2030-02-01"],
        "outside the price history",
    ),
    # simulate: the price path and the flags
    (
        "simulate-missing-path",
        lambda d: ["simulate", DESK, "--prices", str(d / "path.csv")],
        "path.csv: file: not found",
    ),
    (
        "simulate-ragged-row",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            _write(d, "p.csv", PATH_HEADER + "2026-01-01T00:00:00Z,80000,2500\n"),
        ],
        "p.csv: line 2: 3 cells for 4 columns",
    ),
    (
        "simulate-negative-price",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            _write(d, "p.csv", PATH_HEADER + "2026-01-01T00:00:00Z,-1,2500,100\n"),
        ],
        "p.csv: line 2, column BTC: must be finite and > 0",
    ),
    (
        "simulate-nan-price",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            _write(d, "p.csv", PATH_HEADER + "2026-01-01T00:00:00Z,nan,2500,100\n"),
        ],
        "p.csv: line 2, column BTC: must be finite and > 0",
    ),
    (
        "simulate-out-of-order",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            _write(
                d,
                "p.csv",
                PATH_HEADER + "2026-01-02T00:00:00Z,80000,2500,100\n2026-01-01T00:00:00Z,80000,2500,100\n",
            ),
        ],
        "p.csv: line 3, column time: 2026-01-01T00:00:00Z is not after the previous row",
    ),
    (
        "simulate-lowercase-symbol",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            _write(d, "p.csv", "time,btc\n2026-01-01T00:00:00Z,80000\n"),
        ],
        "p.csv: line 1, column btc: not a symbol of the book",
    ),
    (
        "simulate-before-valuation",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            _write(d, "p.csv", PATH_HEADER + "2019-01-01T00:00:00Z,8000,250,10\n"),
        ],
        "prices[0].as_of_ns",
    ),
    (
        "simulate-negative-insurance",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            str(EXAMPLES / "price_path.csv"),
            "--insurance-usd",
            "-5000",
        ],
        "--insurance-usd: must be finite and >= 0",
    ),
    (
        "simulate-nan-insurance",
        lambda d: ["simulate", DESK, "--prices", str(EXAMPLES / "price_path.csv"), "--insurance-usd", "nan"],
        "--insurance-usd: must be finite and >= 0",
    ),
    (
        "simulate-out-is-a-file",
        lambda d: [
            "simulate",
            DESK,
            "--prices",
            str(EXAMPLES / "price_path.csv"),
            "--out",
            _write(d, "taken", "x"),
        ],
        "taken: exists and is not a directory",
    ),
    (
        "simulate-unknown-adl",
        lambda d: ["simulate", DESK, "--prices", str(EXAMPLES / "price_path.csv"), "--adl", "nope"],
        "adl_policy",
    ),
    # oracle replay: the quote file
    ("replay-missing-file", lambda d: ["oracle", "replay", str(d / "none.csv")], "none.csv: file: "),
    (
        "replay-header-only",
        lambda d: ["oracle", "replay", _write(d, "q.csv", QUOTES_HEADER)],
        "q.csv: file: no quote rows",
    ),
    (
        "replay-empty-time",
        lambda d: ["oracle", "replay", _write(d, "q.csv", QUOTES_HEADER + ",a,BTC,5\n")],
        "q.csv: line 2, column time: empty",
    ),
    (
        "replay-zero-price",
        lambda d: ["oracle", "replay", _write(d, "q.csv", QUOTES_HEADER + "2025-12-30T17:00:00Z,a,BTC,0\n")],
        "q.csv: line 2, column price_usd: must be finite and > 0",
    ),
]


def _files(directory: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(directory)): p.read_bytes() for p in sorted(directory.rglob("*")) if p.is_file()
    }


@pytest.mark.parametrize(("case_id", "args", "message"), CASES, ids=[c[0] for c in CASES])
def test_every_command_refuses_bad_input_cleanly(
    tmp_path: Path, case_id: str, args: Callable[[Path], list[str]], message: str
) -> None:
    argv = args(tmp_path)
    before = _files(tmp_path)
    result = runner.invoke(app, argv)
    stderr = " ".join(result.stderr.split())  # terminal wrapping undone
    assert result.exit_code == 2, (case_id, result.exit_code, result.output)
    assert isinstance(result.exception, SystemExit), result.exception  # typer.Exit(2), not a crash
    assert "Traceback" not in result.output
    assert result.stdout == ""
    assert stderr.startswith("error: "), stderr
    assert message in stderr, stderr
    assert _files(tmp_path) == before, "a refused run wrote a file"


def test_oracle_run_without_a_server_names_the_server() -> None:
    result = runner.invoke(
        app,
        [
            "oracle",
            "run",
            "--asset",
            "BTC",
            "--source",
            "a",
            "--server",
            "nats://127.0.0.1:1",
            "--duration-s",
            "1",
        ],
    )
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    assert "error: --server nats://127.0.0.1:1: no NATS server answers" in " ".join(result.stderr.split())

"""Start-up benchmark: what a user waits for, in fresh processes, cold and warm.

    python bench/bench_startup.py [--n-warm 5] [--n-cold 3] [--src PATH] [--only NAME ...]
                                  [--compiled] [--calibrate]

Each figure is the median wall time of N fresh `python` processes (`time.perf_counter` around
`subprocess.run`), stdout discarded:

  cold   NUMBA_CACHE_DIR = a new empty temporary directory per process: every kernel compiles
         (what a user sees the first time after `pip install`)
  warm   NUMBA_CACHE_DIR = one temporary directory filled by a discarded first run: every kernel
         loads from disk (every later run)

Lines: `crossmargin --help`; `crossmargin margin examples/desk.yaml` under each model (cross,
isolated, portfolio deribit-pm, sensitivity, and var fhs-es975 when the shared price history is
present); `--levels` (liquidation and bankruptcy prices under portfolio margin) as its own line;
the first what-if in a fresh process (Python API: load the book, PortfolioSnapshot.build,
what_if).

Floors measured in the same run, same way:
  python -c pass                            the interpreter
  python -c "import numpy, numba"           the libraries every compiled kernel needs
  import margin-run libraries               numpy, pydantic (BaseModel: its lazy parts), yaml,
                                            Typer, Rich: what every `crossmargin margin` imports
                                            that is not crossmargin (no scipy since the book's
                                            positions are core.position_matrix's)
  numba cached-kernel floor                 import numba + call one tiny parallel kernel loaded
                                            from the disk cache (numba initialises its CPU target
                                            and threading layer on the first call: the least any
                                            command that runs a cached kernel can cost)

Every line runs with CROSSMARGIN_KERNEL unset (auto: small work interpreted, core.jit); each
line's `numba_imported` says whether the process imported numba (`-X importtime` on the run that
fills the warm cache). `--compiled` adds every line again with CROSSMARGIN_KERNEL=simd (every
kernel compiled, as before core.jit) under `figures_compiled`, for an A/B in the same run.

`--calibrate` measures, in this process, the interpreted cost of each kernel per unit of the
count its call site states its `work` in (microseconds per position, per price, per
multiply-add, ...), on a synthetic 2,000-account book: the constants core.jit's call sites use.

`--src PATH` runs another checkout's sources (e.g. the main branch's `src`, for a before/after on
the same machine in the same conditions); a line whose command fails there (e.g. `--levels`
before it existed) is reported as null. Timings on a shared machine are noisy: read the floor
lines of the same run next to the figures.

The last line printed is one JSON object with every figure (seconds), N, the load average and the
CPU model (from /proc/cpuinfo).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
DESK = "examples/desk.yaml"
# The console script's entry (`run`: the app, then a fast exit); `app` in a checkout before it.
CLI = (
    "import sys; from crossmargin.cli import main; sys.argv[0] = 'crossmargin'; "
    "(getattr(main, 'run', None) or main.app)()"
)
# Module paths that also exist before the lazy public API (so --src can point at an older checkout).
WHAT_IF = f"""
from crossmargin.adapters.files import load_book
from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioSnapshot
from crossmargin.core.margin.presets import portfolio_preset
loaded = load_book({DESK!r})
model = PortfolioMargin(portfolio_preset("deribit-pm"))
snapshot = PortfolioSnapshot.build(model, loaded.book, loaded.market)
snapshot.what_if(0, instrument=1, quantity=2.0, price=88_000.0).initial_margin_usd
import os, sys
sys.stdout.flush()
os._exit(0)  # the answer is in: the interpreter's teardown is not the what-if's (a notebook never pays it)
"""
FLOOR_KERNEL = """
import numba
import numpy as np


@numba.njit(parallel=True, cache=True, nogil=True)
def total(values):
    out = 0.0
    for n in numba.prange(values.shape[0]):
        out += values[n]
    return out
"""


# What every `crossmargin margin` run imports that is not crossmargin (pydantic checks the book file:
# `import pydantic` alone defers most of it, BaseModel loads it; Typer and Rich are the CLI; scipy
# no more: core.position_matrix), then a fast exit as the CLI's: the least a warm margin run can
# cost on this machine.
LIBRARIES = (
    "import numpy, yaml, typer, rich.console, os, sys; from pydantic import BaseModel; "
    "sys.stdout.flush(); os._exit(0)"
)


NUMBA_IMPORTED: dict[str, bool] = {}  # by case name, from the run that fills the warm cache


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    argv: tuple[str, ...]  # after `python`
    numba: bool = True  # runs numba kernels: measured cold and warm
    needs_data: bool = False


def issue_13_aims(results: dict[str, dict[str, float | bool | None]]) -> dict[str, bool]:
    """Issue 13's start-up aims, each met or not on this run (absent lines count as not met)."""

    def seconds(name: str, kind: str) -> float:
        value = results.get(name, {}).get(kind)
        return float(value) if isinstance(value, float) else float("inf")

    return {
        "help_under_0.5_s": seconds("crossmargin --help", "warm_s") < 0.5,
        "portfolio_cold_under_3_s": seconds("margin portfolio deribit-pm", "cold_s") < 3.0,
        "portfolio_warm_under_0.5_s": seconds("margin portfolio deribit-pm", "warm_s") < 0.5,
        "first_what_if_warm_under_0.5_s": seconds("first what-if (Python API)", "warm_s") < 0.5,
    }


def cli(*args: str) -> tuple[str, ...]:
    return ("-c", CLI, *args)


def cases(floor_dir: Path) -> list[Case]:
    return [
        Case("python -c pass", ("-c", "pass"), numba=False),
        Case("import numpy, numba", ("-c", "import numpy, numba"), numba=False),
        Case("import margin-run libraries", ("-c", LIBRARIES), numba=False),
        Case(
            "numba cached-kernel floor",
            (
                "-c",
                f"import sys; sys.path.insert(0, {str(floor_dir)!r}); import floor_kernel, numpy; "
                "floor_kernel.total(numpy.ones(8))",
            ),
        ),
        Case("crossmargin --help", cli("--help"), numba=False),
        Case("margin cross", cli("margin", DESK, "--json", "--model", "cross")),
        Case("margin isolated", cli("margin", DESK, "--json", "--model", "isolated")),
        Case(
            "margin portfolio deribit-pm",
            cli("margin", DESK, "--json", "--model", "portfolio", "--preset", "deribit-pm"),
        ),
        Case("margin sensitivity", cli("margin", DESK, "--json", "--model", "sensitivity")),
        Case(
            "margin var fhs-es975",
            cli("margin", DESK, "--json", "--model", "var", "--preset", "fhs-es975"),
            needs_data=True,
        ),
        Case(
            "margin portfolio deribit-pm --levels",
            cli("margin", DESK, "--json", "--model", "portfolio", "--preset", "deribit-pm", "--levels"),
        ),
        Case("first what-if (Python API)", ("-c", WHAT_IF)),
    ]


def run_once(case: Case, env: dict[str, str], *, import_times: bool = False) -> tuple[float, float] | None:
    """(wall seconds, CPU seconds user+sys) of one fresh process, or None if it failed.

    CPU time is the child's own (getrusage of children): less sensitive to other processes on a
    shared machine than wall time, but it counts every thread (numba's parallel kernels).
    import_times: run under `-X importtime` and record whether numba was imported."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *(["-X", "importtime"] if import_times else []), *case.argv],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if done.returncode != 0:
        sys.stderr.write(f"  {case.name}: exit {done.returncode}: {done.stderr.decode()[-300:]}\n")
        return None
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    if import_times:
        NUMBA_IMPORTED[case.name] = any(
            line.rsplit("|", 1)[-1].strip() == "numba" for line in done.stderr.decode().splitlines()
        )
    return elapsed, cpu


def median_of(
    case: Case, n: int, env_for_run: dict[str, str], cold_parent: Path | None
) -> tuple[float, float] | None:
    """Medians (wall, CPU) of n fresh processes; cold: a new empty NUMBA_CACHE_DIR under
    cold_parent for each."""
    walls: list[float] = []
    cpus: list[float] = []
    for k in range(n):
        env = dict(env_for_run)
        if cold_parent is not None:
            cache = cold_parent / f"{case.name.replace(' ', '_')}-{k}"
            cache.mkdir()
            env["NUMBA_CACHE_DIR"] = str(cache)
        measured = run_once(case, env)
        if measured is None:
            return None
        walls.append(measured[0])
        cpus.append(measured[1])
    return statistics.median(walls), statistics.median(cpus)


def calibrate() -> dict[str, float]:
    """Interpreted microseconds (CPU) per unit of each kernel's `work` count (core.jit), measured in
    this process on a synthetic 2,000-account book (and random option and VaR inputs): the
    constants the call sites multiply their counts by. Prints and returns them."""
    sys.path.insert(0, str(ROOT / "src"))
    import numpy as np

    from crossmargin.core import jit
    from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
    from crossmargin.core.margin.portfolio import PortfolioMargin, kernel_backend, kernel_inputs
    from crossmargin.core.margin.portfolio.kernel import KernelOutputs, account_streams
    from crossmargin.core.margin.portfolio.totals import PortfolioTotals
    from crossmargin.core.margin.presets import portfolio_preset
    from crossmargin.core.margin.requirements import book_totals, fused_position_requirements
    from crossmargin.core.position_runs import position_runs
    from crossmargin.core.pricing import black76_scenario_values, revalue
    from crossmargin.core.synthetic import SynthSpec, synth_book, synth_market
    from crossmargin.core.var.measures import book_tail_measures

    jit.environment_mode = lambda: "python"  # type: ignore[assignment]  # every kernel interpreted
    book = synth_book(SynthSpec(n_accounts=2_000))
    market = synth_market(book.instruments)
    valuation = revalue(book.instruments, market)
    positions = book.positions
    option_margin = option_unit_margin(book.instruments, valuation, OptionMarginParams())
    rng = np.random.default_rng(0)
    n_options, n_scenarios = 100, 200
    n_accounts, n_instruments, n_assets, n_var = 50, 4, 2, 1_000
    counts = rng.integers(1, 4, n_accounts)
    indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
    nnz = int(indptr[-1])
    params = portfolio_preset("deribit-pm")
    revalued = PortfolioMargin(params).revalued_scenarios(book, market, valuation)
    packed = kernel_inputs(
        book,
        market,
        valuation,
        revalued.scenarios,
        revalued.reval,
        params.addons,
        n_grid_scenarios=revalued.n_grid_scenarios,
        numeraire=params.numeraire,
    )
    streams = account_streams(book.position_runs_for(packed.general_underlyings), book.balance_csr)
    totals = PortfolioTotals.empty(book.n_accounts)
    outputs = KernelOutputs(
        grid_usd=totals.grid_usd,
        worst_scenario=totals.worst_scenario,
        min_delta_usd=totals.min_delta_usd,
        addons_usd=totals.addons_usd,
    )
    width = int(packed.arrays.scenario_rows.shape[1])
    cases = {
        "book_totals per position or balance": (
            positions.nnz + book.balances.size,
            lambda: book_totals(book, valuation, OptionMarginParams(), market.asset_prices(book.assets)),
        ),
        "position requirements per position": (
            positions.nnz,
            lambda: fused_position_requirements(
                book,
                valuation,
                option_margin,
                instrument_index=positions.indices.astype(np.int64),
                quantity=positions.data,
                entry_price=book.entry_price,
            ),
        ),
        "position runs per position": (
            positions.nnz,
            lambda: position_runs(
                positions.indptr, positions.indices, positions.data, book.entry_price, book.instruments
            ),
        ),
        "black76 per price": (
            n_options * n_scenarios,
            lambda: black76_scenario_values(
                forward=rng.uniform(50, 150, n_options),
                factor=rng.uniform(0.5, 1.5, (n_options, n_scenarios)),
                strike=rng.uniform(50, 150, n_options),
                years=rng.uniform(0.01, 2, n_options),
                vol=rng.uniform(0.05, 2, (n_options, n_scenarios)),
                rate=0.0,
                sign=np.ones(n_options),
            ),
        ),
        "VaR tail per multiply-add": (
            (nnz + n_accounts * n_assets) * n_var,
            lambda: book_tail_measures(
                indptr=indptr,
                indices=rng.integers(0, n_instruments, nnz).astype(np.int64),
                quantity=rng.normal(size=nnz),
                entry_term=np.ones(nnz),
                d_unit=rng.normal(size=(n_instruments, n_var)),
                d_coef=rng.normal(size=(n_instruments, n_var)),
                has_coefficient=np.zeros(n_instruments, dtype=bool),
                collateral_usd=rng.normal(size=(n_accounts, n_assets)),
                d_asset=rng.normal(size=(n_assets, n_var)),
                group=np.zeros(n_var, dtype=np.int64),
                tail_counts=np.array([25]),
            ),
        ),
        "portfolio kernel per (position or balance) x column": (
            int(streams.quantity.size + streams.balance_units.size) * width,
            lambda: kernel_backend("python").book(streams, packed.arrays, outputs),
        ),
    }
    found: dict[str, float] = {}
    print("\ninterpreted cost per unit (core.jit call sites' constants):")
    for name, (count, run) in cases.items():
        start = time.process_time()  # CPU time: the machine's other load does not count
        run()
        found[name] = (time.process_time() - start) / count * 1e6
        print(f"  {name:52} {found[name]:7.2f} us  ({count:,} units)")
    return found


def measure(
    args: argparse.Namespace, base: dict[str, str], has_data: bool
) -> dict[str, dict[str, float | bool | None]]:
    """Every case's warm and cold medians (and whether it imported numba) under `base`'s env."""
    results: dict[str, dict[str, float | bool | None]] = {}
    with tempfile.TemporaryDirectory(prefix="bench_startup_") as tmp:
        tmp_path = Path(tmp)
        floor_dir = tmp_path / "floor"
        floor_dir.mkdir()
        (floor_dir / "floor_kernel.py").write_text(FLOOR_KERNEL)
        warm_cache = tmp_path / "warm"
        warm_cache.mkdir()
        cold_parent = tmp_path / "cold"
        cold_parent.mkdir()
        warm_env = {**base, "NUMBA_CACHE_DIR": str(warm_cache)}
        print(
            f"{'':40} {'warm s':>8} {'cold s':>8} {'warm CPU':>9} {'cold CPU':>9}"
            f"   (median of {args.n_warm} / {args.n_cold} fresh processes; CPU = user+sys)"
        )
        for case in cases(floor_dir):
            if args.only and not any(part in case.name for part in args.only):
                continue
            if case.needs_data and not has_data:
                print(f"{case.name:40} skipped: no shared data")
                continue
            warm: tuple[float, float] | None = None
            cold: tuple[float, float] | None = None
            # Fills the warm cache (and records whether numba was imported); a failing line is null.
            if run_once(case, warm_env, import_times=case.numba) is not None:
                warm = median_of(case, args.n_warm, warm_env, None)
                cold = median_of(case, args.n_cold, base, cold_parent) if case.numba else warm
                shutil.rmtree(cold_parent)
                cold_parent.mkdir()
            results[case.name] = {
                "warm_s": None if warm is None else warm[0],
                "cold_s": None if cold is None else cold[0],
                "warm_cpu_s": None if warm is None else warm[1],
                "cold_cpu_s": None if cold is None else cold[1],
                "numba_imported": NUMBA_IMPORTED.get(case.name) if case.numba else None,
            }
            cells = [results[case.name][key] for key in ("warm_s", "cold_s", "warm_cpu_s", "cold_cpu_s")]
            shown = [f"{v:8.2f}" if v is not None else f"{'—':>8}" for v in cells]
            numba_note = {True: "  numba imported", False: "  no numba", None: ""}[
                NUMBA_IMPORTED.get(case.name)
            ]
            print(f"{case.name:40} {shown[0]} {shown[1]}  {shown[2]}  {shown[3]}{numba_note}", flush=True)

    return results


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-warm", type=int, default=5, help="fresh processes per warm figure")
    parser.add_argument("--n-cold", type=int, default=3, help="fresh processes per cold figure")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the sources to run (PYTHONPATH)")
    parser.add_argument("--only", action="append", help="run only the lines whose name contains this")
    parser.add_argument(
        "--compiled", action="store_true", help="every line again with CROSSMARGIN_KERNEL=simd"
    )
    parser.add_argument("--calibrate", action="store_true", help="interpreted cost per unit of each kernel")
    args = parser.parse_args()

    data = os.environ.get("CROSSMARGIN_DATA") or str(ROOT.parent / "shared" / "data")
    has_data = Path(data).is_dir()
    # PYTHONDONTWRITEBYTECODE (set on some CI machines) is dropped: a user's Python writes the
    # bytecode cache on the first run, and every warm figure here is a later run.
    dropped = ("NUMBA_CACHE_DIR", "CROSSMARGIN_KERNEL", "PYTHONDONTWRITEBYTECODE")
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    base.update(PYTHONPATH=str(args.src.resolve()), CROSSMARGIN_DATA=data, COLUMNS="120")

    results = measure(args, base, has_data)
    compiled: dict[str, dict[str, float | bool | None]] | None = None
    if args.compiled:
        print("\nwith CROSSMARGIN_KERNEL=simd (every kernel compiled):")
        compiled = measure(args, {**base, "CROSSMARGIN_KERNEL": "simd"}, has_data)
    calibration = calibrate() if args.calibrate else None

    floor = results.get("import margin-run libraries", {}).get("warm_s")
    for name in ("margin cross", "margin portfolio deribit-pm", "first what-if (Python API)"):
        warm = results.get(name, {}).get("warm_s")
        if warm is not None and floor is not None:
            print(
                f"{name}: warm {warm:.2f} s = libraries floor {floor:.2f} s + crossmargin {warm - floor:.2f} s"
            )
    aims = issue_13_aims(results)
    print("issue 13 aims:", ", ".join(f"{k} {'met' if v else 'NOT met'}" for k, v in aims.items()))
    print(
        json.dumps(
            {
                "bench": "startup",
                "src": str(args.src),
                "n_warm": args.n_warm,
                "n_cold": args.n_cold,
                "cpu": cpu_model(),
                "cores": os.cpu_count(),
                "load_average": os.getloadavg(),
                "aims": aims,
                "figures": results,
                "figures_compiled": compiled,
                "interpreted_us_per_unit": calibration,
            }
        )
    )


if __name__ == "__main__":
    main()

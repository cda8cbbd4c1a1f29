"""Start-up benchmark: what a user waits for, in fresh processes, cold and warm.

    python bench/bench_startup.py [--n-warm 5] [--n-cold 3] [--src PATH] [--only NAME ...]

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
  python -c "import numpy, numba"           the libraries every margin command needs
  numba cached-kernel floor                 import numba + call one tiny parallel kernel loaded
                                            from the disk cache (numba initialises its CPU target
                                            and threading layer on the first call: the least any
                                            command that runs a cached kernel can cost)

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

ROOT = Path(__file__).resolve().parents[1]
DESK = "examples/desk.yaml"
CLI = "import sys; from crossmargin.cli.main import app; sys.argv[0] = 'crossmargin'; app()"
# Module paths that also exist before the lazy public API (so --src can point at an older checkout).
WHAT_IF = f"""
from crossmargin.adapters.files import load_book
from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioSnapshot
from crossmargin.core.margin.presets import portfolio_preset
loaded = load_book({DESK!r})
model = PortfolioMargin(portfolio_preset("deribit-pm"))
snapshot = PortfolioSnapshot.build(model, loaded.book, loaded.market)
snapshot.what_if(0, instrument=1, quantity=2.0, price=88_000.0).initial_margin_usd
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


@dataclass(frozen=True, slots=True)
class Case:
    name: str
    argv: tuple[str, ...]  # after `python`
    numba: bool = True  # runs numba kernels: measured cold and warm
    needs_data: bool = False


def cli(*args: str) -> tuple[str, ...]:
    return ("-c", CLI, *args)


def cases(floor_dir: Path) -> list[Case]:
    return [
        Case("python -c pass", ("-c", "pass"), numba=False),
        Case("import numpy, numba", ("-c", "import numpy, numba"), numba=False),
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


def run_once(case: Case, env: dict[str, str]) -> tuple[float, float] | None:
    """(wall seconds, CPU seconds user+sys) of one fresh process, or None if it failed.

    CPU time is the child's own (getrusage of children): less sensitive to other processes on a
    shared machine than wall time, but it counts every thread (numba's parallel kernels)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    done = subprocess.run(
        [sys.executable, *case.argv],
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


def cpu_model() -> str:
    """/proc/cpuinfo's model name, with family and model (a virtualised "AMD EPYC" says no more:
    family 26 is Zen 5)."""
    fields: dict[str, str] = {}
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key in ("model name", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
            if not line.strip() and fields:
                break
    except OSError:
        return "unknown"
    name = fields.get("model name", "unknown")
    return f"{name} (family {fields.get('cpu family', '?')}, model {fields.get('model', '?')})"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--n-warm", type=int, default=5, help="fresh processes per warm figure")
    parser.add_argument("--n-cold", type=int, default=3, help="fresh processes per cold figure")
    parser.add_argument("--src", type=Path, default=ROOT / "src", help="the sources to run (PYTHONPATH)")
    parser.add_argument("--only", action="append", help="run only the lines whose name contains this")
    args = parser.parse_args()

    data = os.environ.get("CROSSMARGIN_DATA") or str(ROOT.parent / "shared" / "data")
    has_data = Path(data).is_dir()
    base = {k: v for k, v in os.environ.items() if k != "NUMBA_CACHE_DIR"}
    base.update(PYTHONPATH=str(args.src.resolve()), CROSSMARGIN_DATA=data, COLUMNS="120")

    results: dict[str, dict[str, float | None]] = {}
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
            if run_once(case, warm_env) is not None:  # fills the warm cache; a failing line is null
                warm = median_of(case, args.n_warm, warm_env, None)
                cold = median_of(case, args.n_cold, base, cold_parent) if case.numba else warm
                shutil.rmtree(cold_parent)
                cold_parent.mkdir()
            results[case.name] = {
                "warm_s": None if warm is None else warm[0],
                "cold_s": None if cold is None else cold[0],
                "warm_cpu_s": None if warm is None else warm[1],
                "cold_cpu_s": None if cold is None else cold[1],
            }
            cells = [results[case.name][key] for key in ("warm_s", "cold_s", "warm_cpu_s", "cold_cpu_s")]
            shown = [f"{v:8.2f}" if v is not None else f"{'—':>8}" for v in cells]
            print(f"{case.name:40} {shown[0]} {shown[1]}  {shown[2]}  {shown[3]}", flush=True)

    floor = results.get("numba cached-kernel floor", {}).get("warm_s")
    for name in ("margin portfolio deribit-pm", "first what-if (Python API)"):
        warm = results.get(name, {}).get("warm_s")
        if warm is not None and floor is not None:
            print(
                f"{name}: warm {warm:.2f} s = numba cached-kernel floor {floor:.2f} s + {warm - floor:.2f} s"
            )
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
                "figures": results,
            }
        )
    )


if __name__ == "__main__":
    main()

"""The user's path, end to end: a Parquet book file -> `crossmargin margin BOOK --out REPORT`.

    python bench/bench_pipeline.py [--sizes 200000x4 1000000x10] [--formats json parquet]
                                   [--model cross] [--seed 7] [--dir DIR] [--keep]
                                   [--baseline SRC] [--repeat N]

For each size (accounts x positions per account) the script writes the seeded book of
`pipeline_book.py` (desk.yaml's assets and 12 instruments, positions and balances as Parquet),
then runs, each in a fresh process, measured by `os.wait4` (wall seconds, user + sys CPU seconds,
peak RSS of that process):

  crossmargin margin BOOK --out report.json      the JSON report, one account per line
  crossmargin margin BOOK --out report.parquet   the three Parquet tables
  floor                                          what any tool pays for the same input and output:
                                                 python + pyarrow, read both Parquet tables, write
                                                 as many bytes as the report took (JSON floor and
                                                 Parquet floor)
  stages                                         the same command's steps, timed inside one
                                                 fresh process (wall and CPU seconds each):
                                                 imports (everything `margin --out` imports),
                                                 load (`load_book`), margin (`run_margin`),
                                                 report (`margin_columns`), write (`write_report`)
  kernel                                         the margin kernel alone on the loaded book
                                                 (`RiskEngine.recompute`, best of 3, in process)

`--baseline SRC` runs the command a second time from another source tree (`PYTHONPATH=SRC`, e.g.
a worktree of main), alternating with this one, for a before/after in the same run; `--repeat N`
runs each command N times and keeps the median of each figure.

On a shared machine wall times move with the load: read `cpu_seconds` and the floor of the same
run beside them (the load average is printed). The last line is one JSON object: `accounts`,
`positions`, `seconds` and `peak_mb` of the JSON run of the largest size, the Parquet run's
figures, the floors, the per-stage seconds, the kernel time, the CPU model and every size's
figures under `runs` (with the baseline's beside them when `--baseline` is given).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from machine import cpu_model
from pipeline_book import write_book

ROOT = Path(__file__).resolve().parents[1]
# The console script's entry (`run`: the app, then a fast exit); `app` in a --baseline before it.
CLI = (
    "import sys; from crossmargin.cli import main; sys.argv[0] = 'crossmargin'; "
    "(getattr(main, 'run', None) or main.app)()"
)
FLOOR = """
import sys
import pyarrow.parquet as pq
positions, balances, out, size = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
tables = [pq.ParquetFile(p).read() for p in (positions, balances)]
block = b"0" * (1 << 24)
with open(out, "wb") as stream:
    while size > 0:
        stream.write(block[: min(size, len(block))])
        size -= len(block)
"""
KERNEL = """
import json, sys, time
from crossmargin.adapters.files import load_book
from crossmargin.core.margin import CrossMargin
from crossmargin.engine.risk_engine import RiskEngine
loaded = load_book(sys.argv[1])
engine = RiskEngine(loaded.book, loaded.market, CrossMargin(loaded.params))
best = float("inf")
for _ in range(3):
    start = time.perf_counter()
    engine.recompute()
    best = min(best, time.perf_counter() - start)
print(json.dumps({"kernel_seconds": best}))
"""


STAGES = """
import json, sys, time
from pathlib import Path
clocks = [(time.perf_counter(), time.process_time())]
def mark():
    clocks.append((time.perf_counter(), time.process_time()))
# What `crossmargin margin BOOK --out REPORT` imports (cli.main and the command's own imports).
from crossmargin.cli.main import app
from crossmargin.adapters.files import load_book
from crossmargin.adapters.files.report_file import report_target, write_json_data, write_report
from crossmargin.adapters.history.prices import shared_price_history
from crossmargin.adapters.volatility import GarchFilter
from crossmargin.cli.progress import stages
from crossmargin.engine import margin_run
from crossmargin.engine.report_columns import margin_columns
from crossmargin.engine.reports import to_json
mark()
target = report_target(Path(sys.argv[2]))
loaded = load_book(sys.argv[1])
mark()
run = margin_run.run_margin(loaded, model=sys.argv[3])
mark()
columns = margin_columns(run)
mark()
write_report(columns, target)
mark()
names = ("imports", "load", "margin", "report", "write")
print(json.dumps({
    name: {"seconds": round(b[0] - a[0], 3), "cpu_seconds": round(b[1] - a[1], 3)}
    for name, a, b in zip(names, clocks, clocks[1:])
}))
"""
STAGE_NAMES = ("imports", "load", "margin", "report", "write")


def measured(command: list[str], src: Path = ROOT / "src") -> dict[str, Any]:
    """Run `command` (stdout kept, stderr passed through) with `src` on PYTHONPATH; wall and CPU
    seconds, peak RSS (MB) of that process alone (os.wait4)."""
    env = {**os.environ, "PYTHONPATH": str(src)}
    start = time.perf_counter()
    process = subprocess.Popen(command, stdout=subprocess.PIPE, env=env)
    assert process.stdout is not None
    stdout = process.stdout.read()
    _, status, usage = os.wait4(process.pid, 0)
    wall = time.perf_counter() - start
    process.returncode = os.waitstatus_to_exitcode(status)
    if process.returncode != 0:
        raise SystemExit(f"{' '.join(command[:4])}...: exit {process.returncode}")
    return {
        "seconds": round(wall, 3),
        "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 3),
        "peak_mb": round(usage.ru_maxrss / 1024, 1),  # Linux: KiB
        "stdout": stdout.decode(),
    }


def median_of(runs: list[dict[str, Any]], keys: tuple[str, ...]) -> dict[str, float]:
    return {key: round(statistics.median(run[key] for run in runs), 3) for key in keys}


FIGURES = ("seconds", "cpu_seconds", "peak_mb")


def run_size(
    directory: Path,
    *,
    accounts: int,
    per_account: int,
    seed: int,
    formats: list[str],
    model: str,
    baseline: Path | None,
    repeat: int,
) -> dict[str, Any]:
    start = time.perf_counter()
    book = write_book(directory, accounts=accounts, positions_per_account=per_account, seed=seed)
    generated = time.perf_counter() - start
    figures: dict[str, Any] = {
        "accounts": accounts,
        "positions": accounts * per_account,
        "generate_seconds": round(generated, 2),
    }
    for kind in formats:
        report = directory / f"report.{kind}"
        command = [sys.executable, "-c", CLI, "margin", str(book), "--model", model, "--out", str(report)]
        files = (
            [report]
            if kind == "json"
            else [report, *(directory / f"report.{t}.parquet" for t in ("positions", "collateral"))]
        )
        runs: list[dict[str, Any]] = []
        before: list[dict[str, Any]] = []
        floors: list[dict[str, Any]] = []
        stage_runs: list[dict[str, Any]] = []
        for _ in range(repeat):  # A, baseline, stages, floor: in turn, so the load hits all alike
            runs.append(measured(command))
            size = sum(f.stat().st_size for f in files)
            if baseline is not None:
                before.append(measured(command, baseline))
            stage_runs.append(
                json.loads(measured([sys.executable, "-c", STAGES, str(book), str(report), model])["stdout"])
            )
            floor_command = [
                sys.executable,
                "-c",
                FLOOR,
                str(directory / "positions.parquet"),
                str(directory / "balances.parquet"),
                str(directory / "floor.bin"),
                str(size),
            ]
            floors.append(measured(floor_command))
            (directory / "floor.bin").unlink()
        run = median_of(runs, FIGURES)
        floor = median_of(floors, FIGURES)
        stage_figures = {
            name: {
                clock: round(statistics.median(r[name][clock] for r in stage_runs), 3)
                for clock in ("seconds", "cpu_seconds")
            }
            for name in STAGE_NAMES
        }
        figures[kind] = {
            **run,
            "output_mb": round(size / 1e6, 1),
            "floor_seconds": floor["seconds"],
            "floor_cpu_seconds": floor["cpu_seconds"],
            "floor_peak_mb": floor["peak_mb"],
            "stages": stage_figures,
        }
        print(
            f"{accounts:>9,} accounts {accounts * per_account:>11,} positions  --out report.{kind:<8} "
            f"{run['seconds']:6.2f} s wall  {run['cpu_seconds']:6.2f} s cpu  {run['peak_mb']:7.0f} MB peak  "
            f"{size / 1e6:7.0f} MB out  | floor {floor['seconds']:5.2f} s wall {floor['cpu_seconds']:5.2f} s cpu",
            flush=True,
        )
        print(
            f"{'':>9} stages (wall / cpu s): "
            + "  ".join(
                f"{name} {f['seconds']:.2f}/{f['cpu_seconds']:.2f}" for name, f in stage_figures.items()
            ),
            flush=True,
        )
        if baseline is not None:
            old = median_of(before, FIGURES)
            figures[kind]["baseline"] = old
            print(
                f"{'':>9} baseline ({baseline}): {old['seconds']:6.2f} s wall  {old['cpu_seconds']:6.2f} s cpu  "
                f"{old['peak_mb']:7.0f} MB peak  | this/baseline: wall "
                f"{run['seconds'] / old['seconds']:.2f}  cpu {run['cpu_seconds'] / old['cpu_seconds']:.2f}",
                flush=True,
            )
    kernel = measured([sys.executable, "-c", KERNEL, str(book)])
    figures["kernel_seconds"] = round(json.loads(kernel["stdout"])["kernel_seconds"], 4)
    print(
        f"{'':>9} kernel alone (RiskEngine.recompute, cross, best of 3): {figures['kernel_seconds'] * 1e3:.0f} ms",
        flush=True,
    )
    return figures


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--sizes", nargs="+", default=["200000x4", "1000000x10"], help="ACCOUNTSxPOSITIONS_PER_ACCOUNT"
    )
    parser.add_argument("--formats", nargs="+", default=["json", "parquet"], choices=["json", "parquet"])
    parser.add_argument("--model", default="cross")
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--dir", type=Path, default=None, help="work directory (default: a temporary one)")
    parser.add_argument("--keep", action="store_true", help="keep the books and reports")
    parser.add_argument(
        "--baseline", type=Path, default=None, help="another source tree to run alternately (before/after)"
    )
    parser.add_argument("--repeat", type=int, default=1, help="runs of each command (medians kept)")
    args = parser.parse_args()

    load_start = round(os.getloadavg()[0], 2)
    print(f"CPU: {cpu_model()} · {os.cpu_count()} logical CPUs · load average {load_start:.2f} at start")
    root = args.dir or Path(tempfile.mkdtemp(prefix="bench_pipeline_"))
    runs = []
    try:
        for size in args.sizes:
            accounts, per_account = (int(x) for x in size.lower().split("x"))
            directory = root / f"{accounts}x{per_account}"
            runs.append(
                run_size(
                    directory,
                    accounts=accounts,
                    per_account=per_account,
                    seed=args.seed,
                    formats=args.formats,
                    model=args.model,
                    baseline=args.baseline,
                    repeat=max(args.repeat, 1),
                )
            )
            if not args.keep:
                for file in directory.iterdir():
                    file.unlink()
                directory.rmdir()
    finally:
        if not args.keep and args.dir is None and root.exists() and not any(root.iterdir()):
            root.rmdir()
    last = runs[-1]
    primary = last.get("json") or last[args.formats[0]]
    summary = {
        "accounts": last["accounts"],
        "positions": last["positions"],
        "seconds": primary["seconds"],
        "peak_mb": primary["peak_mb"],
        "cpu_seconds": primary["cpu_seconds"],
        "format": "json" if "json" in last else args.formats[0],
        "floor_seconds": primary["floor_seconds"],
        "floor_cpu_seconds": primary["floor_cpu_seconds"],
        "parquet_seconds": last.get("parquet", {}).get("seconds"),
        "parquet_cpu_seconds": last.get("parquet", {}).get("cpu_seconds"),
        "parquet_peak_mb": last.get("parquet", {}).get("peak_mb"),
        "stages": primary["stages"],
        "parquet_stages": last.get("parquet", {}).get("stages"),
        "baseline": primary.get("baseline"),
        "parquet_baseline": last.get("parquet", {}).get("baseline"),
        "kernel_seconds": last["kernel_seconds"],
        "model": args.model,
        "cpu": cpu_model(),
        "load_average_start": load_start,
        "load_average_end": round(os.getloadavg()[0], 2),
        "runs": runs,
    }
    print(json.dumps(summary))


if __name__ == "__main__":
    main()

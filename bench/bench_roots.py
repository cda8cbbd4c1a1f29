"""Liquidation and bankruptcy price roots: this package's false-position search against scipy's
Chandrupatla (`scipy.optimize.elementwise.find_root`), inside the same grid brackets.

    python bench/bench_roots.py [--book examples/desk.yaml] [--repeat 3]

For cross margin (`cross_price_levels`) and portfolio margin under deribit-pm (`model_price_levels`)
on every account of the book: full-book evaluations of the gap function (the cost that matters:
each is one revaluation and margin pass), wall seconds (best of `--repeat`), and the largest
difference between the two methods' prices, relative. The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from crossmargin.adapters.files import load_book
from crossmargin.core.liquidation import model_prices, prices, roots
from crossmargin.engine.margin_run import make_model
from machine import cpu_model

ROOT = Path(__file__).resolve().parents[1]
METHODS = ("false-position", "chandrupatla")


def counted(method: str, counter: list[int]) -> Callable[..., roots.SidedRoots]:
    """nearest_roots with `method`, counting every evaluation of the gap."""

    def run(evaluate: roots.GapFunction, n: int, *, tolerance: float) -> roots.SidedRoots:
        def tally(x: Any, active: Any) -> Any:
            counter[0] += 1
            return evaluate(x, active)

        return roots.nearest_roots(tally, n, tolerance=tolerance, refine=method)

    return run


def levels(case: str, choice: Any, market: Any) -> Any:
    if case == "cross":
        return prices.cross_price_levels(choice.book, market)
    return model_prices.model_price_levels(choice.model, choice.book, market)


def measure(case: str, choice: Any, market: Any, method: str, repeat: int) -> dict[str, Any]:
    counter = [0]
    search = counted(method, counter)
    prices.nearest_roots = search  # type: ignore[assignment]  # the bench swaps the refinement
    model_prices.nearest_roots = search  # type: ignore[assignment]
    best = np.inf
    result = None
    for _ in range(repeat):
        counter[0] = 0
        start = time.perf_counter()
        result = levels(case, choice, market)
        best = min(best, time.perf_counter() - start)
    return {"seconds": best, "evaluations": counter[0], "levels": result}


def largest_difference(a: Any, b: Any) -> float:
    worst = 0.0
    for name in ("liquidation_price", "bankruptcy_price"):
        x, y = getattr(a, name), getattr(b, name)
        both = np.isfinite(x) & np.isfinite(y)
        if np.any(np.isfinite(x) != np.isfinite(y)):
            return float("inf")
        if both.any():
            worst = max(worst, float(np.max(np.abs(x[both] / y[both] - 1.0))))
    return worst


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--book", default=str(ROOT / "examples" / "desk.yaml"))
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    loaded = load_book(Path(args.book))
    original = roots.nearest_roots
    out: dict[str, Any] = {"benchmark": "bench_roots", "cpu": cpu_model(), "book": args.book}
    try:
        for case, choice in (
            ("cross", make_model("cross", loaded)),
            ("portfolio-deribit-pm", make_model("portfolio", loaded, "deribit-pm")),
        ):
            runs = {m: measure(case, choice, loaded.market, m, args.repeat) for m in METHODS}
            difference = largest_difference(runs[METHODS[0]]["levels"], runs[METHODS[1]]["levels"])
            for m in METHODS:
                print(
                    f"{case:<22} {m:<15} {runs[m]['evaluations']:5d} evaluations  {runs[m]['seconds']:8.3f} s"
                )
            print(f"{case:<22} largest relative price difference {difference:.2e}")
            out[case] = {
                **{m: {k: v for k, v in runs[m].items() if k != "levels"} for m in METHODS},
                "largest_relative_difference": difference,
            }
    finally:
        prices.nearest_roots = model_prices.nearest_roots = original  # type: ignore[assignment]
    print(json.dumps(out))


if __name__ == "__main__":
    main()

"""The nearest root either side of today, for every account at once.

A gap function g(x) per account (x = ln f, f the factor on one underlying's price; g = equity − MM
for a liquidation price, equity for a bankruptcy price) is searched outward from x = 0 on each
side:

1. Shared grid: x = ±GRID_LOG_FACTORS (log-spaced, dense near today: |x| from 1e-3 to ln 1e4).
   Every grid point is ONE evaluation for every pending account at the same x; each account's
   bracket is its first sign change (g > 0 nearer today, g <= 0 farther).
2. Refinement inside each bracket [a, b] (distances from today, g(a) > 0 >= g(b)): by default
   Chandrupatla's method (scipy.optimize.elementwise.find_root, Chandrupatla 1997,
   https://docs.scipy.org/doc/scipy/reference/generated/scipy.optimize.elementwise.find_root.html),
   the reported root the end of its final bracket where g <= 0. The alternative (`refine=
   "false-position"`): every unresolved
   account at its own trial point, in cycles of three steps: false position (clipped tolerance/2
   inside the bracket), a probe tolerance/2 from the endpoint that moved (which ends the search when
   the false position landed within tolerance/2 of the root), then a bisection, so each cycle at
   least halves the bracket. It stops when b − a <= tolerance.

The reported root is b, the end where the account is liquidated (g <= 0), within `tolerance` of a
crossing in ln f (a relative price error of at most tolerance). An account with g(0) <= 0 reports 0
(it is there today); one with no sign change on the grid reports NaN (never reached within the
range). Two crossings inside one grid interval (a gap that dips below and back up between two
grid points, whose |ln f| differ by ×1.34) can be missed: the grid is the resolution of "first".
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

FloatArray = npt.NDArray[np.float64]
BoolArray = npt.NDArray[np.bool_]

FACTOR_RANGE = 1e4  # search f in [1e-4, 1e4]
GRID_NEAREST_LOG_FACTOR = 1e-3  # the first grid point either side: a 0.1 % move
GRID_POINTS_PER_SIDE = 32  # consecutive points differ by a factor ~1.34 in |ln f|
GRID_LOG_FACTORS = np.geomspace(GRID_NEAREST_LOG_FACTOR, math.log(FACTOR_RANGE), GRID_POINTS_PER_SIDE)

# evaluate(x, active) -> gap, shapes (n,): trial ln f per account; entries outside `active` unused.
GapFunction = Callable[[FloatArray, BoolArray], FloatArray]


@dataclass(frozen=True, slots=True)
class SidedRoots:
    """Per account, (n,): ln f of the nearest root below today (<= 0) and above today (>= 0);
    0 where the account is already there, NaN where no root exists on that side."""

    below: FloatArray
    above: FloatArray

    @property
    def nearest(self) -> FloatArray:
        """The root nearest today (below on a tie), NaN where neither side has one."""
        below_closer = ~(np.abs(self.above) < np.abs(self.below))  # NaN above compares False
        nearest: FloatArray = np.where(
            np.isnan(self.below), self.above, np.where(below_closer, self.below, self.above)
        )
        return nearest


def max_refinement_steps(tolerance: float) -> int:
    """Three steps per halving of the widest grid bracket down to `tolerance`."""
    widest = float(np.max(np.diff(np.concatenate([[0.0], GRID_LOG_FACTORS]))))
    return 3 * (math.ceil(math.log2(widest / tolerance)) + 1)


def nearest_roots(
    evaluate: GapFunction, n: int, *, tolerance: float, refine: str = "chandrupatla"
) -> SidedRoots:
    """Nearest root of every account's gap below and above today (module docstring). `refine`:
    "chandrupatla" (`scipy.optimize.elementwise.find_root` inside the grid brackets) or
    "false-position" (this module's own cycles). bench/bench_roots.py measured both on the desk
    book (AMD EPYC, 2 cores): Chandrupatla needs 467 evaluations to false position's 584 under
    cross margin and 382 to 455 under deribit-pm portfolio margin (~20 % less time), the prices
    agreeing to 2.5e-13 and 3.6e-8 relative, within each search's tolerance (1e-12, 1e-7 in ln f)."""
    everyone = np.ones(n, dtype=bool)
    today = evaluate(np.zeros(n), everyone)
    below = _side(evaluate, today, direction=-1.0, tolerance=tolerance, refine=refine)
    above = _side(evaluate, today, direction=1.0, tolerance=tolerance, refine=refine)
    return SidedRoots(below=-below, above=above)


def _side(
    evaluate: GapFunction, today: FloatArray, *, direction: float, tolerance: float, refine: str
) -> FloatArray:
    """Distance |ln f| to the first root on one side (0 if there today, NaN if none)."""
    n = today.size
    there = today <= 0.0
    near = np.zeros(n)  # distance with g > 0
    near_gap = today.copy()
    far = np.full(n, np.nan)  # distance with g <= 0
    far_gap = np.full(n, np.nan)
    pending = ~there
    for t in GRID_LOG_FACTORS:  # one shared trial point per step
        if not pending.any():
            break
        gap = evaluate(np.full(n, direction * t), pending)
        hit = pending & (gap <= 0.0)
        far = np.where(hit, t, far)
        far_gap = np.where(hit, gap, far_gap)
        moved = pending & ~hit
        near = np.where(moved, t, near)
        near_gap = np.where(moved, gap, near_gap)
        pending &= ~hit
    bracketed = ~there & ~np.isnan(far)
    active = bracketed & (far - near > tolerance)
    if refine == "chandrupatla":
        far, unconverged = _chandrupatla(
            evaluate, near, far, active, direction=direction, tolerance=tolerance
        )
        active &= unconverged  # a gap scipy could not bracket to tolerance (NaN): false position
    phase = np.zeros(n, dtype=np.int64)  # 0 false position, 1 probe, 2 bisection
    far_moved = np.zeros(n, dtype=bool)  # which end the last step moved
    half = 0.5 * tolerance
    for _ in range(max_refinement_steps(tolerance)):
        if not active.any():
            break
        with np.errstate(invalid="ignore", divide="ignore"):
            secant = near + (far - near) * near_gap / (near_gap - far_gap)
        secant = np.clip(np.nan_to_num(secant, nan=0.5 * (near + far)), near + half, far - half)
        probe = np.where(far_moved, far - half, near + half)
        trial = np.select([phase == 0, phase == 1], [secant, probe], 0.5 * (near + far))
        trial = np.where(active, trial, 0.0)
        gap = evaluate(direction * trial, active)
        hit = active & (gap <= 0.0)
        miss = active & ~hit
        far = np.where(hit, trial, far)
        far_gap = np.where(hit, gap, far_gap)
        near = np.where(miss, trial, near)
        near_gap = np.where(miss, gap, near_gap)
        phase = np.where(active, (phase + 1) % 3, phase)
        far_moved = np.where(active, hit, far_moved)
        active &= far - near > tolerance
    root: FloatArray = np.where(there, 0.0, np.where(bracketed, far, np.nan))
    return root


def _chandrupatla(
    evaluate: GapFunction,
    near: FloatArray,
    far: FloatArray,
    active: BoolArray,
    *,
    direction: float,
    tolerance: float,
) -> tuple[FloatArray, BoolArray]:
    """The liquidated end (g <= 0) of each active bracket refined by scipy's Chandrupatla to
    `tolerance` (find_root evaluates only the unconverged accounts: their rows ride along as an
    argument), and the accounts it did not converge for (their `far` unchanged)."""
    from scipy.optimize import elementwise  # ~0.45 s import: only when asked

    rows = np.flatnonzero(active)
    n = near.size
    unconverged = np.zeros(n, dtype=bool)

    def gap_of(x: FloatArray, row: npt.NDArray[np.float64]) -> FloatArray:
        trial = np.zeros(n)
        active = np.zeros(n, dtype=bool)
        at = row.astype(np.int64)
        trial[at] = direction * x
        active[at] = True
        gap: FloatArray = evaluate(trial, active)[at]
        return gap

    out = far.copy()
    if rows.size == 0:
        return out, unconverged
    found = elementwise.find_root(
        gap_of,
        (near[rows], far[rows]),
        args=(rows.astype(np.float64),),
        tolerances={"xatol": tolerance / 2, "xrtol": 0.0, "fatol": 0.0, "frtol": 0.0},
    )
    lo, hi = found.bracket
    f_lo, f_hi = found.f_bracket
    # The end where the account is liquidated (g <= 0), as the false-position search reports.
    done = np.asarray(found.success, dtype=bool)
    end = np.where(f_hi <= 0.0, hi, np.where(f_lo <= 0.0, lo, found.x))
    out[rows] = np.where(done, end, far[rows])
    unconverged[rows] = ~done
    return out, unconverged

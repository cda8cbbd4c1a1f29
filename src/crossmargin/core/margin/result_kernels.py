"""One-pass kernels behind `MarginResult`: the pooled totals and the result's invariants.

`pooled_into` computes, per account, what `result.MarginResult.pooled` defines with numpy
(equity = collateral + positions, available = equity − IM, the bankruptcy rule and MM / equity)
with the same float64 operations in the same order, so the numbers are bit for bit those of the
numpy formulas (no fastmath, no reassociation). `invariants_hold` reads the arrays once and says
whether every check of `MarginResult.__post_init__` passes; when one does not, the numpy checks
run to name the field and the index. Both replace five to ten passes over 1M-element arrays
(~0.1 s of a 1M-account stress round, bench/bench_system.py) by one. Serial: a few ms at 1M
accounts, and no thread barrier to wait at on a loaded machine.
"""

from __future__ import annotations

import math

import numpy as np

from crossmargin.core.jit import kernel

MM_ABOVE_IM_SLACK = 1e-9  # relative: IM and MM are sums of terms computed in different orders


@kernel(nogil=True)
def pooled_into(
    collateral: np.ndarray,
    position: np.ndarray,
    initial: np.ndarray,
    maintenance: np.ndarray,
    gross: np.ndarray,
    zero_tolerance: float,
    equity: np.ndarray,
    available: np.ndarray,
    ratio: np.ndarray,
    bankrupt: np.ndarray,
) -> None:
    """Fill equity, available, margin ratio and bankrupt (A,) from the pooled totals (A,); an
    account is at zero when equity <= zero_tolerance · gross (0.0: when equity <= 0)."""
    for a in range(collateral.shape[0]):
        e = collateral[a] + position[a]
        zero = zero_tolerance * gross[a] if zero_tolerance != 0.0 else 0.0
        empty = collateral[a] == 0.0 and maintenance[a] == 0.0 and e >= -zero
        broke = e <= zero and not empty
        equity[a] = e
        available[a] = e - initial[a]
        bankrupt[a] = broke
        if broke:
            ratio[a] = np.nan
        elif e > 0.0:
            ratio[a] = maintenance[a] / e
        else:
            ratio[a] = 0.0


@kernel(nogil=True)
def invariants_hold(
    equity: np.ndarray,
    initial: np.ndarray,
    maintenance: np.ndarray,
    available: np.ndarray,
    ratio: np.ndarray,
    bankrupt: np.ndarray,
) -> bool:
    """True when every element is finite where required, IM, MM ≥ 0, MM ≤ IM (with slack) and
    the ratio is NaN exactly where bankrupt."""
    for a in range(equity.shape[0]):
        im = initial[a]
        mm = maintenance[a]
        if not (
            math.isfinite(equity[a])
            and math.isfinite(im)
            and math.isfinite(mm)
            and math.isfinite(available[a])
            and im >= 0.0
            and mm >= 0.0
            and mm <= im + MM_ABOVE_IM_SLACK * max(abs(im), 1.0)
            and math.isnan(ratio[a]) == bankrupt[a]
        ):
            return False
    return True

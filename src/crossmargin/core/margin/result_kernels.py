"""One-pass kernels behind `MarginResult`: the pooled totals and the result's invariants.

`pooled_into` computes, per account, what `result.MarginResult.pooled` defines with numpy
(equity = collateral + positions, available = equity − IM, the bankruptcy rule and MM / equity)
with the same float64 operations in the same order, so the numbers are bit for bit those of the
numpy formulas (no fastmath, no reassociation). `invariants_hold` reads the arrays once and says
whether every check of `MarginResult.__post_init__` passes; when one does not, the numpy checks
run to name the field and the index. Both replace five to ten passes over 1M-element arrays
(~0.1 s of a 1M-account stress round, bench/bench_system.py) by one. Serial: a few ms at 1M
accounts, and no thread barrier to wait at on a loaded machine. Both are written per account
(`pooled_account`, `account_invariants_hold`, inlined) so that the cross kernel computes the same
bits in its own pass, on the totals still in registers (`requirements.book_result`).
"""

from __future__ import annotations

import math

import numpy as np

from crossmargin.core.jit import kernel

MM_ABOVE_IM_SLACK = 1e-9  # relative: IM and MM are sums of terms computed in different orders


@kernel(nogil=True, inline="always")
def pooled_account(
    collateral: float,
    position: float,
    initial: float,
    maintenance: float,
    gross: float,
    zero_tolerance: float,
) -> tuple[float, float, float, bool]:
    """(equity, available, margin ratio, bankrupt) of one account from its pooled totals (USD):
    equity = collateral + positions, available = equity − IM, ratio = MM / equity (NaN when
    bankrupt, 0 when equity <= 0 otherwise); bankrupt when equity <= zero_tolerance · gross (0.0:
    when equity <= 0) unless the account is empty. The one definition of every pooled pass."""
    e = collateral + position
    zero = zero_tolerance * gross if zero_tolerance != 0.0 else 0.0
    empty = collateral == 0.0 and maintenance == 0.0 and e >= -zero
    broke = e <= zero and not empty
    if broke:
        ratio = np.nan
    elif e > 0.0:
        ratio = maintenance / e
    else:
        ratio = 0.0
    return e, e - initial, ratio, broke


@kernel(nogil=True, inline="always")
def account_invariants_hold(
    equity: float, initial: float, maintenance: float, available: float, ratio: float, bankrupt: bool
) -> bool:
    """Every check of `MarginResult.__post_init__` on one account: finite equity, IM, MM and
    available, IM, MM >= 0, MM <= IM (with slack), the ratio NaN exactly when bankrupt."""
    return (
        math.isfinite(equity)
        and math.isfinite(initial)
        and math.isfinite(maintenance)
        and math.isfinite(available)
        and initial >= 0.0
        and maintenance >= 0.0
        and maintenance <= initial + MM_ABOVE_IM_SLACK * max(abs(initial), 1.0)
        and math.isnan(ratio) == bankrupt
    )


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
    """Fill equity, available, margin ratio and bankrupt (A,) from the pooled totals (A,)
    (`pooled_account`)."""
    for a in range(collateral.shape[0]):
        e, free, r, broke = pooled_account(
            collateral[a], position[a], initial[a], maintenance[a], gross[a], zero_tolerance
        )
        equity[a] = e
        available[a] = free
        ratio[a] = r
        bankrupt[a] = broke


@kernel(nogil=True)
def invariants_hold(
    equity: np.ndarray,
    initial: np.ndarray,
    maintenance: np.ndarray,
    available: np.ndarray,
    ratio: np.ndarray,
    bankrupt: np.ndarray,
) -> bool:
    """True when `account_invariants_hold` for every account."""
    for a in range(equity.shape[0]):
        if not account_invariants_hold(
            equity[a], initial[a], maintenance[a], available[a], ratio[a], bankrupt[a]
        ):
            return False
    return True

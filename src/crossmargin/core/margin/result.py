"""What every margin model returns: per-account totals, and an on-demand breakdown."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_all, check_finite
from crossmargin.core.margin.result_kernels import MM_ABOVE_IM_SLACK, invariants_hold, pooled_into

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]
BoolArray = npt.NDArray[np.bool_]

# An account is bankrupt when equity <= EQUITY_ZERO_TOLERANCE x its gross value (Σ |collateral
# values| + Σ |position value terms|, `requirements.BookTotals.gross_value_usd`). Equity is a sum
# of such terms, so its rounding error is a few ulps (2.2e-16 each) of that gross value per term;
# 1e-12 covers ~4,500 terms' worth of rounding and is still below a millionth of a cent on a
# billion-dollar account, so no solvent account is ever called bankrupt by it. Without it a
# position opened at the mark with no collateral (equity 0 in exact arithmetic) could come out
# at +1e-10 and report a margin ratio of 4e14 instead of bankrupt.
EQUITY_ZERO_TOLERANCE = 1e-12


def bankrupt_accounts(
    equity_usd: FloatArray,
    collateral_value_usd: FloatArray,
    maintenance_margin_usd: FloatArray,
    zero_usd: FloatArray | float,
) -> BoolArray:
    """The one bankruptcy rule: equity <= zero_usd (0 up to rounding, EQUITY_ZERO_TOLERANCE x gross
    value), except an account with nothing in it: no collateral, no requirement and equity 0 up to
    rounding (never funded, or closed out flat) owes nothing and is flat, not bankrupt, and has
    margin ratio 0 rather than null. Borrowing or a position with a requirement keeps the rule."""
    at_zero = equity_usd <= zero_usd
    empty = (collateral_value_usd == 0.0) & (maintenance_margin_usd == 0.0) & (equity_usd >= -zero_usd)
    flags: BoolArray = at_zero & ~empty
    return flags


def margin_ratio(
    maintenance_margin_usd: FloatArray, equity_usd: FloatArray, bankrupt: BoolArray
) -> FloatArray:
    """MM / equity; NaN (JSON null) where bankrupt, 0 for an empty account (equity 0, not bankrupt)."""
    positive = equity_usd > 0.0
    ratio = np.where(positive, maintenance_margin_usd / np.where(positive, equity_usd, 1.0), 0.0)
    result: FloatArray = np.where(bankrupt, np.nan, ratio)
    return result


# The per-account arrays of a MarginResult, in field order (what the engine updates in place and
# what a bit-for-bit comparison of two results compares).
RESULT_ARRAYS = (
    "equity_usd",
    "collateral_value_usd",
    "position_value_usd",
    "initial_margin_usd",
    "maintenance_margin_usd",
    "available_usd",
    "margin_ratio",
    "bankrupt",
)


@dataclass(frozen=True, slots=True)
class MarginResult:
    """Per account, shapes (n_accounts,), USD.

    equity = haircut collateral value + position values (unrealised PnL of futures, mark value
    of spot and options). Under a pooled model available = equity - IM and margin_ratio =
    MM / equity; `bankrupt` accounts (equity <= 0 up to rounding, `EQUITY_ZERO_TOLERANCE`, or an
    isolated position under water) have margin_ratio NaN (JSON null).
    """

    model: str
    equity_usd: FloatArray
    collateral_value_usd: FloatArray
    position_value_usd: FloatArray
    initial_margin_usd: FloatArray
    maintenance_margin_usd: FloatArray
    available_usd: FloatArray
    margin_ratio: FloatArray
    bankrupt: BoolArray

    def __post_init__(self) -> None:
        arrays = (
            self.equity_usd,
            self.initial_margin_usd,
            self.maintenance_margin_usd,
            self.available_usd,
            self.margin_ratio,
        )
        # core.jit work: ~2 us an account interpreted (an estimate)
        ready = _kernel_ready(arrays, self.bankrupt)
        if ready and invariants_hold.for_work(2 * len(self.equity_usd))(*arrays, self.bankrupt):
            return  # every check below holds (one pass; result_kernels)
        check_finite(self.equity_usd, "result.equity_usd")
        check_finite(self.initial_margin_usd, "result.initial_margin_usd")
        check_finite(self.maintenance_margin_usd, "result.maintenance_margin_usd")
        check_finite(self.available_usd, "result.available_usd")
        check_all(self.initial_margin_usd >= 0.0, "IM >= 0")
        check_all(self.maintenance_margin_usd >= 0.0, "MM >= 0")
        # Rounding slack: IM and MM are sums of terms computed in different orders.
        slack = MM_ABOVE_IM_SLACK * np.maximum(np.abs(self.initial_margin_usd), 1.0)
        check_all(self.maintenance_margin_usd <= self.initial_margin_usd + slack, "MM <= IM")
        check_all(
            np.isnan(self.margin_ratio) == self.bankrupt,
            "margin_ratio is null exactly when bankrupt",
        )

    @classmethod
    def of_checked_rows(cls, model: str, **arrays: npt.NDArray[Any]) -> MarginResult:
        """A result whose every row was already checked as a row of another MarginResult (an
        engine's result grown by a checked part, or copied into its growth buffers): built
        without `__post_init__`'s second pass over every account (~4 ms at 1M accounts, paid in
        the tick after a sign-up). `arrays`: RESULT_ARRAYS, all of them."""
        if set(arrays) != set(RESULT_ARRAYS):
            raise ValueError(f"of_checked_rows needs exactly {RESULT_ARRAYS}")
        result = object.__new__(cls)
        object.__setattr__(result, "model", model)
        for name, array in arrays.items():
            object.__setattr__(result, name, array)
        return result

    @classmethod
    def of_kernel_check(cls, model: str, failing: int, **arrays: npt.NDArray[Any]) -> MarginResult:
        """A result from a kernel that ran `result_kernels.account_invariants_hold` on every row
        and counted `failing` rows: taken as it is when none failed (`of_checked_rows`), else
        through `__post_init__`'s checks, which name the field and the index."""
        if failing == 0:
            return cls.of_checked_rows(model, **arrays)
        return cls(model=model, **arrays)

    @classmethod
    def pooled(
        cls,
        *,
        model: str,
        collateral_value_usd: FloatArray,
        position_value_usd: FloatArray,
        initial_margin_usd: FloatArray,
        maintenance_margin_usd: FloatArray,
        gross_value_usd: FloatArray | None = None,
    ) -> MarginResult:
        """One pool per account: available = equity - IM, ratio = MM / equity; bankrupt when
        equity <= EQUITY_ZERO_TOLERANCE · gross_value_usd (None: when equity <= 0)."""
        totals = (collateral_value_usd, position_value_usd, initial_margin_usd, maintenance_margin_usd)
        gross = gross_value_usd if gross_value_usd is not None else collateral_value_usd
        if _kernel_ready((*totals, gross), None):
            n = len(collateral_value_usd)
            equity, available, ratio = np.empty(n), np.empty(n), np.empty(n)
            flags = np.empty(n, dtype=np.bool_)
            tolerance = EQUITY_ZERO_TOLERANCE if gross_value_usd is not None else 0.0
            pooled_into.for_work(2 * n)(*totals, gross, tolerance, equity, available, ratio, flags)
            return cls(
                model=model,
                equity_usd=equity,
                collateral_value_usd=collateral_value_usd,
                position_value_usd=position_value_usd,
                initial_margin_usd=initial_margin_usd,
                maintenance_margin_usd=maintenance_margin_usd,
                available_usd=available,
                margin_ratio=ratio,
                bankrupt=flags,
            )
        equity = collateral_value_usd + position_value_usd
        zero = 0.0 if gross_value_usd is None else EQUITY_ZERO_TOLERANCE * gross_value_usd
        bankrupt = bankrupt_accounts(equity, collateral_value_usd, maintenance_margin_usd, zero)
        ratio = margin_ratio(maintenance_margin_usd, equity, bankrupt)
        return cls(
            model=model,
            equity_usd=equity,
            collateral_value_usd=collateral_value_usd,
            position_value_usd=position_value_usd,
            initial_margin_usd=initial_margin_usd,
            maintenance_margin_usd=maintenance_margin_usd,
            available_usd=equity - initial_margin_usd,
            margin_ratio=ratio,
            bankrupt=bankrupt,
        )

    @property
    def below_maintenance(self) -> BoolArray:
        """Accounts whose margin ratio is at or above 1 (or bankrupt): due for liquidation."""
        flags: BoolArray = self.bankrupt | (self.margin_ratio >= 1.0)
        return flags


def _kernel_ready(floats: tuple[object, ...], flags: object) -> bool:
    """Whether the one-pass kernels take these arrays as they are: float64 (and bool) vectors of
    one length, contiguous; anything else (lists, views with strides, other dtypes) goes through
    numpy, so the kernels compile for one signature only."""
    first = floats[0]
    if not isinstance(first, np.ndarray) or first.ndim != 1:
        return False
    arrays = (*floats, flags) if flags is not None else floats
    return all(
        isinstance(a, np.ndarray)
        and a.shape == first.shape
        and a.flags.c_contiguous
        and a.dtype == (np.bool_ if a is flags else np.float64)
        for a in arrays
    )


@dataclass(frozen=True, slots=True)
class Breakdown:
    """Contributions for a set of accounts. Positions: one row each, (n_positions,), with the
    account row and instrument index. Collateral: (len(account_rows), n_assets).

    For isolated margin, isolated_equity_usd is each position's own equity (assigned collateral
    plus position value); NaN under cross margin.
    """

    account_rows: IntArray
    position_account: IntArray
    position_instrument: IntArray
    quantity: FloatArray
    entry_price: FloatArray
    value_usd: FloatArray
    unrealised_pnl_usd: FloatArray
    initial_margin_usd: FloatArray
    maintenance_margin_usd: FloatArray
    isolated_equity_usd: FloatArray
    balance: FloatArray
    collateral_value_usd: FloatArray
    haircut: FloatArray


def allocate_requirement(
    breakdown: Breakdown,
    *,
    positions_per_account: IntArray,
    initial_margin_usd: FloatArray,
    maintenance_margin_usd: FloatArray,
    weight: FloatArray,
) -> Breakdown:
    """Split each account's requirement (one per breakdown account row; positions stored account by
    account, `positions_per_account` of them) over its positions pro rata to `weight` (>= 0, one
    per position), for models whose requirement is not a sum over positions (portfolio,
    sensitivity). An account whose weights are all zero splits by |value_usd|, then evenly, so
    the position columns always sum to the account's requirement."""
    counts = np.asarray(positions_per_account, dtype=np.int64)
    n = counts.size
    owner = np.repeat(np.arange(n), counts)

    def normalised(w: FloatArray) -> tuple[FloatArray, FloatArray]:
        total = np.bincount(owner, weights=w, minlength=n).astype(np.float64)
        return w / np.where(total > 0.0, total, 1.0)[owner], total

    share, total = normalised(np.maximum(weight, 0.0))
    by_value, value_total = normalised(np.abs(breakdown.value_usd))
    even = 1.0 / np.maximum(counts, 1)[owner]
    share = np.where(total[owner] > 0.0, share, np.where(value_total[owner] > 0.0, by_value, even))
    return dataclasses.replace(
        breakdown,
        initial_margin_usd=share * np.asarray(initial_margin_usd)[owner],
        maintenance_margin_usd=share * np.asarray(maintenance_margin_usd)[owner],
    )

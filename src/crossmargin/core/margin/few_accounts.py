"""Cross margin of a handful of accounts in one kernel call: the ledger's margin checks.

A withdrawal, a transfer or a fill checks the margin of one or two accounts
(`core.ledger.state.risk_view`), and a fill then refreshes both accounts' margin-call status on the
same numbers. Through `collateral.haircut_units`, `pricing.entry_term`,
`requirements.csr_totals` and `MarginResult.pooled` that was four kernel dispatches and a dozen
numpy calls on arrays of two rows: ~45 us a check, about 40 % of a fill's decision (issue 16).
Here one call takes the positions as the ledger gathers them, rows of

    (account row, instrument index, contracts, entry price)    sorted by row, then instrument

and the balances (A, K) in asset units, and runs the very kernels of that path in the same order,
each on the values the numpy glue gave it before:

    indptr, indices, quantity      from the rows (a Book's CSR order)
    term_p   = 1 / E_p  for inverse delta-one instruments, E_p elsewhere        (pricing.entry_term)
    units    = haircut units of the balances                          (collateral.haircut_units)
    totals   = the fused cross pass over positions and units   (requirements._book_kernel, serial)
    equity, available, margin ratio, bankrupt   in the same pass (result_kernels.pooled_account)

so the numbers are bit for bit those of a Book of the same accounts through `CrossMargin.evaluate`
(tests/core/margin/test_few_accounts.py). Like every kernel (core.jit) it runs interpreted for
small work until the process compiles, with the same bits.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crossmargin.core.assets import AssetTable
from crossmargin.core.collateral import _haircut_units_kernel
from crossmargin.core.jit import kernel
from crossmargin.core.margin.requirements import INTERPRETED_US_PER_ITEM, _book_kernel
from crossmargin.core.margin.result import EQUITY_ZERO_TOLERANCE, MarginResult

FloatArray = npt.NDArray[np.float64]

# The serial builds (a handful of accounts: no thread pool, and a process that forks stays safe to).
# Module globals so that the compiled kernel below calls their compiled builds (core.jit binds every
# Kernel a kernel names to its build).
_units_serial = _haircut_units_kernel.serial()
_totals_serial = _book_kernel.serial()

# The (account row, instrument index, contracts, entry price) columns of `held`.
HELD_COLUMNS = 4


@kernel(nogil=True)
def few_accounts_kernel(
    held: np.ndarray,
    balances: np.ndarray,
    reciprocal_entry: np.ndarray,
    liability_weight: np.ndarray,
    hc_floor: np.ndarray,
    hc_haircut: np.ndarray,
    hc_below: np.ndarray,
    records: np.ndarray,
    n_tiers: int,
    price: np.ndarray,
    collateral: np.ndarray,
    value: np.ndarray,
    initial: np.ndarray,
    maintenance: np.ndarray,
    gross: np.ndarray,
    equity: np.ndarray,
    available: np.ndarray,
    ratio: np.ndarray,
    bankrupt: np.ndarray,
) -> int:
    """Fill the nine per-account outputs (A,) from `held` (P, 4) and `balances` (A, K) (module
    docstring); returns how many accounts fail the result's invariants (the totals kernel's
    count)."""
    n_accounts = balances.shape[0]
    n_positions = held.shape[0]
    indptr = np.zeros(n_accounts + 1, dtype=np.int64)
    indices = np.empty(n_positions, dtype=np.int64)
    quantity = np.empty(n_positions, dtype=np.float64)
    term = np.empty(n_positions, dtype=np.float64)
    for p in range(n_positions):
        i = np.int64(held[p, 1])  # exact: an index < 2**53 held in float64
        indptr[np.int64(held[p, 0]) + 1] += 1
        indices[p] = i
        quantity[p] = held[p, 2]
        term[p] = 1.0 / held[p, 3] if reciprocal_entry[i] else held[p, 3]
    for a in range(n_accounts):
        indptr[a + 1] += indptr[a]
    units = np.empty_like(balances)
    _units_serial(balances, liability_weight, hc_floor, hc_haircut, hc_below, units)
    no_rows = np.zeros(0, dtype=np.int64)  # every account, in order (no subset)
    return _totals_serial(
        False,
        no_rows,
        indptr,
        indices,
        quantity,
        term,
        records,
        n_tiers,
        units,
        price,
        collateral,
        value,
        initial,
        maintenance,
        gross,
        EQUITY_ZERO_TOLERANCE,
        equity,
        available,
        ratio,
        bankrupt,
    )


def few_accounts_margin(
    held: FloatArray,
    balances: FloatArray,
    *,
    assets: AssetTable,
    reciprocal_entry: npt.NDArray[np.bool_],
    records: FloatArray,
    n_tiers: int,
    asset_price_usd: FloatArray,
    mode: str | None = None,
) -> MarginResult:
    """The cross-margin result of the accounts (rows of `balances`, (A, K) asset units, finite)
    holding `held` ((P, 4): account row, instrument index, contracts, entry price; sorted by row
    then instrument), in the market of `records` (`requirements.priced_records`) and
    `asset_price_usd` (K,); `reciprocal_entry`: per instrument of the records' table. `mode`: a
    kernel mode for this call (core.jit: "python" interprets, "numba" compiles), None: the
    process's."""
    n = balances.shape[0]
    collateral, value, initial, maintenance, gross, equity, available, ratio = (np.empty(n) for _ in range(8))
    flags = np.empty(n, dtype=np.bool_)
    work = INTERPRETED_US_PER_ITEM * (held.shape[0] + balances.size)
    failing = few_accounts_kernel.for_work(work, mode)(
        held,
        balances,
        reciprocal_entry,
        assets.liability_weight,
        assets.tier_floor,
        assets.tier_haircut,
        assets.tier_value_below,
        records,
        n_tiers,
        asset_price_usd,
        collateral,
        value,
        initial,
        maintenance,
        gross,
        equity,
        available,
        ratio,
        flags,
    )
    return MarginResult.of_kernel_check(
        "cross",
        int(failing),
        equity_usd=equity,
        collateral_value_usd=collateral,
        position_value_usd=value,
        initial_margin_usd=initial,
        maintenance_margin_usd=maintenance,
        available_usd=available,
        margin_ratio=ratio,
        bankrupt=flags,
    )

"""What the venue owes each account, per asset, in exact minor units.

An account's liability in asset k is its positive balance in k (the venue must return it); a
negative balance is the account's debt to the venue, kept beside (`debt_units`), never netted
into the liability tree, whose leaves must be non-negative. From a book (float64 asset units)
the conversion rounds liabilities UP and debts DOWN, both in the users' favour, so a
published total never understates what is owed (`units.units_ceil`); a ledger already holds
exact units.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.solvency.units import units_ceil, units_floor
from crossmargin.errors import InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Liabilities:
    """`units` (A, K) >= 0: owed to each account per asset; `debt_units` (A, K) >= 0: owed by it.
    Minor units of 10**-decimals[k] of asset k."""

    account_ids: tuple[str, ...]
    assets: tuple[str, ...]
    decimals: tuple[int, ...]
    units: IntArray
    debt_units: IntArray

    def __post_init__(self) -> None:
        shape = (len(self.account_ids), len(self.assets))
        for name, matrix in (("units", self.units), ("debt_units", self.debt_units)):
            if matrix.shape != shape or matrix.dtype != np.int64:
                raise InputError(f"liabilities.{name}", f"must be int64 of shape {shape}")
            if matrix.size and int(matrix.min()) < 0:
                raise InputError(f"liabilities.{name}", "must be >= 0")
        if len(self.decimals) != len(self.assets):
            raise InputError("liabilities.decimals", "one per asset")

    def total_units(self) -> dict[str, int]:
        """Exact totals per asset (Python ints, no wrap)."""
        return {a: sum(self.units[:, k].tolist()) for k, a in enumerate(self.assets)}


def liabilities_from_balances(
    account_ids: Sequence[str],
    assets: Sequence[str],
    balances: FloatArray,
    decimals: Mapping[str, int],
) -> Liabilities:
    """From a book's (A, K) float64 balances in asset units (negative = borrowed)."""
    matrix = np.asarray(balances, dtype=np.float64)
    units = np.zeros(matrix.shape, dtype=np.int64)
    debt = np.zeros(matrix.shape, dtype=np.int64)
    for k, symbol in enumerate(assets):  # K assets, vectorised over accounts
        if symbol not in decimals:
            raise InputError(f"decimals[{symbol}]", "every asset needs its minor-unit decimals")
        units[:, k] = units_ceil(np.maximum(matrix[:, k], 0.0), decimals[symbol], name=f"balances[{symbol}]")
        debt[:, k] = units_floor(np.maximum(-matrix[:, k], 0.0), decimals[symbol], name=f"balances[{symbol}]")
    return Liabilities(
        account_ids=tuple(account_ids),
        assets=tuple(assets),
        decimals=tuple(decimals[a] for a in assets),
        units=units,
        debt_units=debt,
    )


def liabilities_from_units(
    account_ids: Sequence[str],
    assets: Sequence[str],
    balance_units: Mapping[tuple[str, str], int],
    decimals: Mapping[str, int],
) -> Liabilities:
    """From a ledger's exact balances {(account, asset): units}; accounts not listed hold 0."""
    row = {a: i for i, a in enumerate(account_ids)}
    column = {a: k for k, a in enumerate(assets)}
    units = np.zeros((len(row), len(column)), dtype=np.int64)
    debt = np.zeros_like(units)
    for (account, asset), amount in balance_units.items():  # the ledger's own dict, once
        if account in row and asset in column:
            target = units if amount > 0 else debt
            target[row[account], column[asset]] = abs(amount)
    return Liabilities(
        account_ids=tuple(account_ids),
        assets=tuple(assets),
        decimals=tuple(decimals[a] for a in assets),
        units=units,
        debt_units=debt,
    )

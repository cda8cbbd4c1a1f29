"""ADL's candidates held outside a decision's state.

A liquidation whose loss reaches auto-deleveraging ranks every profitable holder of the market on
the side opposite to the bankrupt position (`core.liquidation.adl`). With the candidates' positions
and equity given as arrays (a venue reads them from its whole-book margin), the decision's own
state needs only the liquidated account and the winners ADL picks: O(winners) traders to copy,
re-margin and refresh instead of O(the market's holders). The same candidates, in the same (id)
order, with the same equity give the same ranking, allocation and haircuts as a decision whose
state holds them all.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.ledger.state import LedgerState
from crossmargin.errors import InputError

IntArray = npt.NDArray[np.int64]
FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class Counterparties:
    """One market's possible ADL candidates: n traders (no system account), sorted by account id
    (the order a state's positions give, which `random_start` and the tie-breaks read), as arrays
    so that the ledger's work on them is numpy, not a Python step per holder.

    quantity (n,) signed contracts (zero or of the other side: not a candidate, skipped);
    entry_price (n,) in the instrument's quote; equity_usd (n,)
    each holder's cross-margin equity at the decision's prices and state (float64: risk maths).
    They stand for the traders the decision does not hold, as of its start; for a trader it
    holds (the liquidated account, an earlier market's ADL winner, any trader of its state) the
    ledger reads its own state instead: positions, entry and equity as the decision has moved
    them. So one set of arrays per market serves a liquidation whose waterfalls reach ADL in
    several markets (one market's winners may be another's candidates)."""

    instrument: str
    accounts: npt.NDArray[np.str_]
    quantity: IntArray
    entry_price: FloatArray
    equity_usd: FloatArray

    def __post_init__(self) -> None:
        n = len(self.accounts)
        for name in ("accounts", "quantity", "entry_price", "equity_usd"):
            if np.shape(getattr(self, name)) != (n,):
                raise InputError(f"counterparties.{name}", f"must have {n} entries, one per account")
        if self.accounts.dtype.kind != "U":
            raise InputError("counterparties.accounts", "must be an array of account ids (str)")
        if n > 1 and not bool(np.all(self.accounts[1:] > self.accounts[:-1])):
            raise InputError("counterparties.accounts", "must be sorted and unique")


# The state of traders a decision does not hold, as it is outside the decision (which has not
# moved them): a LedgerState holding at least their balances, positions, statuses and deadlines
# (a venue's sub-state of them). Given to `apply`, the ledger takes ADL's winners in through it
# when it picks them, instead of raising MissingTradersError.
TradersOf = Callable[[frozenset[str]], LedgerState]


class MissingTradersError(Exception):
    """The decision picked ADL winners its state does not hold and was given no `TradersOf`:
    decide again with them added (the same candidates give the same winners)."""

    def __init__(self, traders: frozenset[str]) -> None:
        super().__init__(f"ADL needs the state of {len(traders)} traders outside the decision")
        self.traders = traders


class StaleCounterpartiesError(Exception):
    """A winner's position in the state is not the one its `Counterparties` gave: the arrays
    are not the state's (a caller's bug); the caller decides again holding the candidates."""


def rows_of(ids: npt.NDArray[np.str_], names: Sequence[str]) -> npt.NDArray[np.intp]:
    """The rows of `names` (sorted) among `ids` (sorted, unique, as a `Counterparties`' accounts),
    those present: a binary search each, where `np.isin` compares every id with every name."""
    if not ids.size or not names:
        return np.zeros(0, dtype=np.intp)
    wanted = np.array(names, dtype=np.str_)
    at = np.minimum(np.searchsorted(ids, wanted), ids.size - 1)
    found: npt.NDArray[np.intp] = at[ids[at] == wanted]
    return found

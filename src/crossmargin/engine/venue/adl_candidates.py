"""ADL's candidates through a venue's round of liquidations, kept current between them.

A crash liquidates many accounts in a row, and each whose loss reaches ADL ranks the same market's
opposite-side holders. Gathering them from the fold (its holder index and positions dicts) is a
Python step per holder (~1 us): at 1M holders, a second per liquidation. `AdlCandidates` gathers
each (market, side) once per round and afterwards redoes only the accounts a liquidation moved
(`moved`: the liquidated account, ADL's winners; O(those) plus an O(holders) numpy copy), their
equity read again from the monitor. Prices do not move within a round, so no other holder's
equity changes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import numpy as np
import numpy.typing as npt

from crossmargin.core.ledger.counterparties import Counterparties, rows_of
from crossmargin.engine.venue.state import VenueState

# The equity (USD, float64) of accounts at the round's prices and the fold's state, in the order
# asked: the venue's whole-book margin (engine.venue.monitor).
EquityOf = Callable[[Sequence[str]], npt.NDArray[np.float64]]


class AdlCandidates:
    """`candidates(market, side)`: the traders holding `market` with contracts of sign `side`, as
    `Counterparties` (sorted by id; rows with zero contracts for those that have left the side
    during the round), current for the fold as it is now; `moved(accounts)` after a
    liquidation's effects are folded. One per round of liquidations (the fold must not change
    otherwise meanwhile)."""

    def __init__(self, state: VenueState, equity_of: EquityOf) -> None:
        self._state = state
        self._equity_of = equity_of
        self._held: dict[tuple[str, int], Counterparties] = {}
        self._stale: dict[tuple[str, int], set[str]] = {}

    def __call__(self, market: str, side: int) -> Counterparties:
        key = (market, side)
        held = self._held.get(key)
        if held is None:
            held = self._gather(market, side, self._state.instrument_holders.get(market, ()))
        elif self._stale[key]:
            held = self._redo(held, side, self._stale[key])
        self._held[key], self._stale[key] = held, set()
        return held

    def moved(self, accounts: Iterable[str]) -> None:
        """These accounts' positions or balances changed (a liquidation's effects)."""
        moved = set(accounts)
        for stale in self._stale.values():
            stale |= moved

    def _gather(self, market: str, side: int, accounts: Iterable[str]) -> Counterparties:
        positions, status = self._state.positions, self._state.status
        held = sorted(
            (a, p)
            for a in accounts
            if a in status and (p := positions.get((a, market))) is not None and p.quantity * side > 0
        )
        names = [a for a, _ in held]
        return Counterparties(
            instrument=market,
            accounts=np.array(names, dtype=np.str_),
            quantity=np.fromiter((p.quantity for _, p in held), dtype=np.int64, count=len(held)),
            entry_price=np.fromiter((p.entry_price for _, p in held), dtype=np.float64, count=len(held)),
            equity_usd=np.asarray(self._equity_of(names), dtype=np.float64),
        )

    def _redo(self, held: Counterparties, side: int, moved: set[str]) -> Counterparties:
        """`held` with the moved accounts gathered again. Those it lists keep their rows (one
        that no longer holds the side stays with zero contracts: the ledger skips it), so the ids
        are shared, not copied (a string copy per liquidation was most of ADL's cost at 20,000
        holders); a moved account new to the side is put in at its place in id order."""
        ids = held.accounts
        rows = rows_of(ids, sorted(moved))
        now = self._gather(held.instrument, side, moved)
        listed = rows_of(ids, now.accounts.tolist())
        if listed.size == now.accounts.size:  # nobody new: the numbers move, the ids stay
            quantity, entry, equity = held.quantity.copy(), held.entry_price.copy(), held.equity_usd.copy()
            quantity[rows] = 0
            quantity[listed], entry[listed], equity[listed] = now.quantity, now.entry_price, now.equity_usd
            return Counterparties(
                instrument=held.instrument,
                accounts=ids,
                quantity=quantity,
                entry_price=entry,
                equity_usd=equity,
            )
        keep = np.ones(ids.size, dtype=bool)
        keep[rows] = False
        kept = ids[keep]
        at = np.searchsorted(kept, now.accounts)
        dtype = np.result_type(kept.dtype, now.accounts.dtype)  # a longer id widens the strings
        return Counterparties(
            instrument=held.instrument,
            accounts=np.insert(kept.astype(dtype), at, now.accounts),
            quantity=np.insert(held.quantity[keep], at, now.quantity),
            entry_price=np.insert(held.entry_price[keep], at, now.entry_price),
            equity_usd=np.insert(held.equity_usd[keep], at, now.equity_usd),
        )

"""Postings: the double-entry record of every money movement.

A posting moves `amount_units` (> 0) of one asset from `debit_account` to `credit_account`:
the debit account's balance falls by the amount, the credit account's rises by it (balances are
what the venue owes each account, TigerBeetle's credits-minus-debits). Every posting is balanced
by construction; an event's postings are balanced per asset in total.

System accounts (names start with "@"):
    @external         the world outside the venue: deposits debit it, withdrawals credit it,
                      collateral sold in liquidation is swapped with it. Its balance per asset is
                      minus the net amount that entered the venue.
    @fees             trading fees, funding rounding residue, borrow interest
    @insurance        insurance fund: liquidation fees in, bankrupt deficits out
    @backstop         optional backstop vault, the waterfall stage after the fund
    @socialised_loss  pass-through for losses spread over all holders (zero after each event)
    @bad_debt         recorded bad debt: negative while a deficit is unresolved
    @clearing         clearing pool: realised PnL of delta-one positions and option expiry payoffs;
                      holds the open positions' unrealised PnL claims, so it may be negative
    @liquidator       the market liquidations close into (a venue liquidity vault, as
                      Hyperliquid's HLP): takes over closed positions at the impacted price
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from crossmargin.errors import InputError

EXTERNAL = "@external"
FEES = "@fees"
INSURANCE = "@insurance"
BACKSTOP = "@backstop"
SOCIALISED_LOSS = "@socialised_loss"
BAD_DEBT = "@bad_debt"
CLEARING = "@clearing"
LIQUIDATOR = "@liquidator"
SYSTEM_ACCOUNTS = (EXTERNAL, FEES, INSURANCE, BACKSTOP, SOCIALISED_LOSS, BAD_DEBT, CLEARING, LIQUIDATOR)
# Accounts whose balances may be negative: the outside world, the clearing pool (open PnL
# claims), recorded bad debt and the liquidation market. Every other account stays >= 0 per asset,
# except a solvent trader's borrowing (checked by value, see ledger.liquidate).
MAY_BE_NEGATIVE = frozenset({EXTERNAL, CLEARING, BAD_DEBT, LIQUIDATOR})


@dataclass(frozen=True, slots=True, kw_only=True)
class Posting:
    """One balanced movement of `amount_units` minor units of `asset`."""

    sequence: int
    debit_account: str
    credit_account: str
    asset: str
    amount_units: int
    kind: str

    def __post_init__(self) -> None:
        if self.amount_units <= 0:
            raise InputError("posting.amount_units", f"must be > 0, got {self.amount_units!r}")
        if self.debit_account == self.credit_account:
            raise InputError("posting.credit_account", "must differ from debit_account")


def balance_deltas(postings: Iterable[Posting]) -> dict[tuple[str, str], int]:
    """(account, asset) -> credits − debits over the postings. For any set of postings the deltas
    of one asset sum to zero over accounts; a state change must equal these deltas exactly."""
    deltas: dict[tuple[str, str], int] = {}
    for p in postings:
        deltas[(p.debit_account, p.asset)] = deltas.get((p.debit_account, p.asset), 0) - p.amount_units
        deltas[(p.credit_account, p.asset)] = deltas.get((p.credit_account, p.asset), 0) + p.amount_units
    return deltas

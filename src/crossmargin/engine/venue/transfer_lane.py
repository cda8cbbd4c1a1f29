"""The transfer lane: a transfer or withdrawal between HEALTHY traders decided on the fold.

The generic path (`decide._transfer`, `decide._withdraw`) cuts a sub-state of the traders, runs
the ledger's withdrawal in a transaction (balance, status gate, bad-debt gate, a risk view of
every trader of the sub-state for the IM check and the status refresh), checks the open orders'
reservation with another risk view, credits the receiver, and takes a third risk view for the
record's margin rows. For the common case (HEALTHY traders with no margin-call deadline who stay
so, a known asset, a whole number of units the sender holds) the outcome is known in a few
steps, and the lane writes it directly:

    sender:    balance >= units, no bad debt at the venue (`apply._withdrawal`'s gates)
    one kernel call, rows (sender after, receiver before, receiver after)
               (`lane_rules.margin_on_fold`: `risk_view`'s gather and kernel)
    sender after:    available >= 0 (the ledger's IM check), stays HEALTHY (its refresh),
                     available - its open orders' reservation >= 0 (`decide._check_reserved`)
    receiver before: stays HEALTHY (the withdrawal's refresh sees it before the credit; the
                     credit then only raises its equity, the generic path's deposit shortcut)
    effects:   the one posting, no position, status or record, the margin rows after

the very rules the generic path applies, in its order, so the effects are the generic path's
value for value (tests/engine/venue/test_transfer_lane.py runs two venues, lane on and off, over
random command streams: the same log, byte for byte, and the same state digest). Anything else,
including every command the generic path refuses, returns None and goes the generic way, which
decides it exactly as before: the lane never refuses anything.
"""

from __future__ import annotations

from typing import Any

from crossmargin.core.ledger.postings import BAD_DEBT, EXTERNAL
from crossmargin.core.ledger.reservation import reserved_im_of
from crossmargin.core.ledger.state import LedgerConfig, Position
from crossmargin.core.margin import MarginResult
from crossmargin.engine.venue.commands import Transfer, Withdraw
from crossmargin.engine.venue.lane_rules import held_now, lane_trader, margin_on_fold, stays_healthy
from crossmargin.engine.venue.state import VenueState

Effects = dict[str, Any]
# Postings are signed 64-bit integers in the store (decide.MAX_UNITS): a larger amount is the
# generic path's to refuse.
_MAX_UNITS = 2**63 - 1


def transfer_effects(
    state: VenueState, config: LedgerConfig, command: Transfer, as_of_ns: int
) -> Effects | None:
    """The transfer's effects on `state` (what `decide.decide` returns for it), or None when the
    lane does not take it (module docstring). Reads the state, changes nothing."""
    sender, receiver = command.from_account, command.to_account
    asset, units = command.asset, command.amount_units
    if not (
        lane_trader(state, receiver)
        and sender != receiver
        and _may_send(state, config, sender, asset, units, as_of_ns)
    ):
        return None
    sender_held, receiver_held = held_now(state, sender), held_now(state, receiver)
    result = margin_on_fold(
        state,
        config,
        [sender_held, receiver_held, receiver_held],
        [
            (_moved(state, config, sender, asset, -units), sender),
            (state.balances, receiver),
            (_moved(state, config, receiver, asset, units), receiver),
        ],
    )
    reserved = _sender_checks(state, config, result, sender, sender_held, as_of_ns)
    if reserved is None or not stays_healthy(result, 1, config, as_of_ns):
        return None
    receiver_reserved = _reserved(state, config, receiver, receiver_held)
    return _effects(
        [sender, receiver, asset, units, "transfer"],
        [_margin_row(result, 0, sender, reserved), _margin_row(result, 2, receiver, receiver_reserved)],
        as_of_ns,
    )


def withdraw_effects(
    state: VenueState, config: LedgerConfig, command: Withdraw, as_of_ns: int
) -> Effects | None:
    """The withdrawal's effects on `state` (`decide.decide`'s), or None (module docstring)."""
    account, asset, units = command.account, command.asset, command.amount_units
    if not _may_send(state, config, account, asset, units, as_of_ns):
        return None
    held = held_now(state, account)
    result = margin_on_fold(state, config, [held], [(_moved(state, config, account, asset, -units), account)])
    reserved = _sender_checks(state, config, result, account, held, as_of_ns)
    if reserved is None:
        return None
    return _effects(
        [account, EXTERNAL, asset, units, "withdrawal"], [_margin_row(result, 0, account, reserved)], as_of_ns
    )


def _may_send(
    state: VenueState, config: LedgerConfig, account: Any, asset: Any, units: Any, as_of_ns: int
) -> bool:
    """The withdrawal's gates the lane checks before any margin: a lane trader, a known asset, a
    whole number of units within the store's range and the account's balance, no bad debt
    outstanding at the venue (`apply._withdrawal`), no clock going back (`apply.apply`)."""
    return (
        lane_trader(state, account)
        and as_of_ns >= state.time_ns
        and type(units) is int
        and 0 < units <= _MAX_UNITS
        and type(asset) is str
        and asset in config.assets.index
        and units <= state.balances.get((account, asset), 0)
        and not any(state.balances.get((BAD_DEBT, k), 0) < 0 for k in config.assets.symbols)
    )


def _moved(
    state: VenueState, config: LedgerConfig, account: str, asset: str, units: int
) -> dict[tuple[str, str], int]:
    """The account's balances (exact units) with `units` added to `asset`'s."""
    balances = {(account, a): state.balances.get((account, a), 0) for a in config.assets.symbols}
    balances[(account, asset)] += units
    return balances


def _sender_checks(
    state: VenueState,
    config: LedgerConfig,
    result: MarginResult,
    account: str,
    held: dict[str, Position],
    as_of_ns: int,
) -> float | None:
    """Row 0 is the sender after: its reservation when the ledger's IM check, its status refresh
    and the reservation check (`decide._check_reserved`) all pass, else None."""
    available = float(result.available_usd[0])
    if available < 0.0 or not stays_healthy(result, 0, config, as_of_ns):
        return None
    reserved = _reserved(state, config, account, held)
    if available - reserved < 0.0:
        return None
    return reserved


def _reserved(state: VenueState, config: LedgerConfig, account: str, held: dict[str, Position]) -> float:
    """IM the account's open orders reserve (`decide.reserved_usd`; positions are unchanged)."""
    sizes = state.order_sizes_of(account)
    return reserved_im_of(held, state, config, sizes) if sizes else 0.0


def _effects(posting: list[Any], margin: list[list[Any]], as_of_ns: int) -> Effects:
    """The generic path's effects of a money move that changes no position, status or record."""
    return {
        "postings": [posting],
        "positions": [],
        "status": [],
        "records": [],
        "margin": margin,
        "time_ns": as_of_ns,
    }


def _margin_row(result: MarginResult, row: int, account: str, reserved: float) -> list[Any]:
    return [
        account,
        float(result.equity_usd[row]),
        float(result.initial_margin_usd[row]),
        float(result.maintenance_margin_usd[row]),
        reserved,
    ]

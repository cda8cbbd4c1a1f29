"""The fill lane: a trade between two healthy traders decided on the venue's fold directly.

The generic path decides a fill on a sub-state of its two traders (`decide._fill`): a
`LedgerState` cut out of the fold, a ledger transaction (`core.ledger.apply`) that copies its
dicts, trades, posts fees, takes the traders' margin, refreshes their status and snapshots the
result, then a diff of the positions into the record's effects. For the commonest fill (a live
perpetual or future, between two HEALTHY traders with no margin-call deadline who stay HEALTHY,
against a resting order of the maker or none) the outcome is known in a few steps, and the lane
writes it directly:

    per side (taker +q, maker -q):  contracts, entry, realised PnL   `transact.position_after`
                                    realised PnL posting vs @clearing   (`units_signed_pnl`)
    per side (taker, maker):        trading fee to @fees                `transact.fee_units`
    both traders:                   cross margin after the trade, one kernel call
                                    (`state.margin_of_rows`, `risk_view`'s), IM check of a
                                    side that grows, status stays HEALTHY
    the order named, if any:        what is left of it; each trader's open orders' reservation
                                    after the trade (`reservation.reserved_im_of`, the generic
                                    path's `reserved_usd`), checked for a side that grows

the very functions the ledger's transaction calls, in its order, so the effects are the generic
path's, value for value (tests/engine/venue/test_fill_lane.py runs two venues, lane on and off, over
random command streams: the same log, byte for byte, and the same state digest). Anything else,
including every fill the generic path refuses or that moves a status, returns None and goes the
generic way, which decides it exactly as before: the lane never refuses anything.
"""

from __future__ import annotations

import math
from typing import Any

from crossmargin.core.instruments import InstrumentKind
from crossmargin.core.ledger.money import units_signed_pnl
from crossmargin.core.ledger.postings import CLEARING, FEES
from crossmargin.core.ledger.reservation import reserved_im_of
from crossmargin.core.ledger.state import LedgerConfig, Position
from crossmargin.core.ledger.transact import fee_units, position_after
from crossmargin.core.margin import MarginResult
from crossmargin.engine.venue.commands import Fill
from crossmargin.engine.venue.decide import order_left_by_fill
from crossmargin.engine.venue.lane_rules import held_now, lane_trader, margin_on_fold, stays_healthy
from crossmargin.engine.venue.state import VenueState
from crossmargin.errors import InputError

Effects = dict[str, Any]
_DELTA_ONE = (int(InstrumentKind.PERPETUAL), int(InstrumentKind.FUTURE))


def fill_effects(state: VenueState, config: LedgerConfig, command: Fill, as_of_ns: int) -> Effects | None:
    """The fill's effects on `state` (what `decide.decide` returns for it), or None when the lane
    does not take it (module docstring). Reads the state, changes nothing."""
    taker, maker, instrument = command.taker, command.maker, command.instrument
    quantity, price = command.quantity, command.price
    if not (
        lane_trader(state, taker)
        and lane_trader(state, maker)
        and taker != maker
        and as_of_ns >= state.time_ns
        and type(quantity) is int
        and quantity != 0
        and type(price) is float  # an int price (or a huge one) the generic path converts or refuses
        and math.isfinite(price)
        and price > 0.0
        and type(instrument) is str
        and instrument in config.instruments.index
        and instrument not in state.expired
    ):
        return None
    i = config.instruments.index[instrument]
    if int(config.instruments.kind[i]) not in _DELTA_ONE:
        return None
    try:
        order_effects = order_left_by_fill(state, command, maker)
    except InputError:
        return None  # not an order of the maker this fill fits: the generic path refuses it
    asset = config.settlement_asset(i)
    decimals = config.decimals[asset]
    postings: list[list[Any]] = []
    moved: dict[str, Position | None] = {}
    growing: list[str] = []  # the ledger's IM check: larger or flipped
    larger: list[str] = []  # the reservation check (`decide._fill`): larger in size
    for who, dq in ((taker, quantity), (maker, -quantity)):
        old = state.positions.get((who, instrument))
        q0 = old.quantity if old else 0
        if abs(q0 + dq) > abs(q0):
            larger.append(who)
        if abs(q0 + dq) > abs(q0) or (q0 + dq) * q0 < 0:
            growing.append(who)
        q1, entry, realised = position_after(config.instruments, i, old, dq, price)
        moved[who] = Position(q1, entry) if q1 != 0 else None
        if realised != 0.0:
            _post(postings, CLEARING, who, asset, units_signed_pnl(realised, decimals), "fill:realised_pnl")
    for who, rate in ((taker, config.taker_fee_rate), (maker, config.maker_fee_rate)):
        fee_asset, fee = fee_units(config, state.prices, instrument, quantity, price, rate)
        _post(postings, who, FEES, fee_asset, fee, "trading_fee")
    traders = sorted((taker, maker))
    result = _margin_after(state, config, traders, instrument, moved, postings)
    for n, who in enumerate(traders):
        if who in growing and float(result.available_usd[n]) < 0.0:
            return None  # refused: the generic path says so
        if not stays_healthy(result, n, config, as_of_ns):
            return None  # a status moves: the generic path records it
    reserved = {
        who: _reserved_after(state, config, who, instrument, moved[who], order_effects) for who in traders
    }
    for n, who in enumerate(traders):
        if who in larger and float(result.available_usd[n]) - reserved[who] < 0.0:
            return None  # below IM once its orders' reservation counts: the generic path refuses
    return {
        "postings": postings,
        "positions": [_position_row(who, instrument, moved[who]) for who in traders],
        "status": [],
        "records": [],
        "orders": order_effects,
        "margin": [
            [
                who,
                float(result.equity_usd[n]),
                float(result.initial_margin_usd[n]),
                float(result.maintenance_margin_usd[n]),
                reserved[who],
            ]
            for n, who in enumerate(traders)
        ],
        "time_ns": as_of_ns,
    }


def _reserved_after(
    state: VenueState,
    config: LedgerConfig,
    who: str,
    instrument: str,
    position: Position | None,
    order_effects: list[list[Any]],
) -> float:
    """IM `who`'s open orders reserve after the fill (`decide.reserved_usd` on the trial state:
    the consumed order at what is left of it, gone at 0), on its positions after the trade."""
    sizes = state.order_sizes_after(who, order_effects)
    if not sizes:
        return 0.0
    held = held_now(state, who)
    held.pop(instrument, None)
    if position is not None:
        held[instrument] = position
    return reserved_im_of(held, state, config, sizes)


def _post(postings: list[list[Any]], debit: str, credit: str, asset: str, units: int, kind: str) -> None:
    """`Tx.post`'s row: nothing for zero, a negative amount the other way round."""
    if units == 0:
        return
    if units < 0:
        debit, credit, units = credit, debit, -units
    postings.append([debit, credit, asset, units, kind])


def _position_row(who: str, instrument: str, position: Position | None) -> list[Any]:
    """`decide._effects_of`'s row: a closed position as (0, 0.0)."""
    if position is None:
        return [who, instrument, 0, 0.0]
    return [who, instrument, position.quantity, position.entry_price]


def _margin_after(
    state: VenueState,
    config: LedgerConfig,
    traders: list[str],
    instrument: str,
    moved: dict[str, Position | None],
    postings: list[list[Any]],
) -> MarginResult:
    """Cross margin of `traders` (sorted) on the fold with the trade applied: their positions
    (the traded one replaced or closed) and balances (the postings applied), as `risk_view`
    gathers them, through the same kernel call."""
    holdings = []
    for who in traders:
        mine = held_now(state, who)
        mine.pop(instrument, None)
        if (now := moved[who]) is not None:
            mine[instrument] = now
        holdings.append(mine)
    # The traders' balances after the postings (the pools' are not needed: they hold no margin).
    symbols = config.assets.symbols
    after = {(t, a): state.balances.get((t, a), 0) for t in traders for a in symbols}
    for debit, credit, asset, units, _kind in postings:
        if (debit, asset) in after:
            after[(debit, asset)] -= units
        if (credit, asset) in after:
            after[(credit, asset)] += units
    return margin_on_fold(state, config, holdings, [(after, t) for t in traders])

"""Initial margin an account's open orders reserve, every order in one kernel call.

A resting order that would increase risk is charged the IM it would add if filled at its price,
each order on its own (Binance's and Deribit's open-order margin, summed conservatively):

    reserved = Σ_orders max(IM(positions with the order filled) − IM(positions now), 0)

Each term was a ledger transaction and a risk view of its own, so an account with N resting
orders paid N + 1 margin passes on every check that reads its reservation (a withdrawal, a
transfer, a fill, a new order, its margin row): O(N) Python per command, the shape of a market
maker's book. Here the N + 1 position sets are rows of one few-accounts kernel call
(`state.margin_of_rows`): row 0 the positions now, row k + 1 those with order k filled. IM is a
sum over positions' contracts only (collateral and entry prices enter equity, never IM), so each
row's IM has the bits of the risk view of that hypothetical state, and the sum is taken in
order, as before (tests/core/ledger/test_reservation.py against the per-order reference,
`im_with_order_by_risk_view`, kept as the definition; bench/bench_orders.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import numpy.typing as npt

from crossmargin.core.ledger.postings import LIQUIDATOR
from crossmargin.core.ledger.state import (
    LedgerConfig,
    LedgerState,
    Position,
    Prices,
    margin_of_rows,
    priced_market,
    risk_view,
)
from crossmargin.core.ledger.transact import Tx

# An order as the reservation reads it: (instrument, contracts signed, limit price).
OrderTerms = tuple[str, int, float]


def reserved_im_usd(
    state: LedgerState, config: LedgerConfig, account: str, orders: Sequence[OrderTerms]
) -> float:
    """IM `orders` reserve for `account` on `state`, USD (module docstring); 0 without orders."""
    return reserved_im_of(_held_by(state, account), state, config, orders)


def reserved_im_of(
    held: Mapping[str, Position], prices: Prices, config: LedgerConfig, orders: Sequence[OrderTerms]
) -> float:
    """`reserved_im_usd` of an account holding `held` (instrument -> position) in the market of
    `prices` (a ledger state or the venue's fold: the fill lane's positions after its trade)."""
    if not orders:
        return 0.0
    im = _order_im(held, prices, config, orders)
    total = 0.0
    for k in range(len(orders)):
        total += max(float(im[k + 1]) - float(im[0]), 0.0)
    return total


def order_im_usd(
    state: LedgerState, config: LedgerConfig, account: str, orders: Sequence[OrderTerms]
) -> npt.NDArray[np.float64]:
    """(1 + len(orders),) the account's IM now, then with each order filled on its own, USD."""
    return _order_im(_held_by(state, account), state, config, orders)


def _held_by(state: LedgerState, account: str) -> dict[str, Position]:
    return {i: p for (a, i), p in state.positions.items() if a == account}


def _order_im(
    held_by: Mapping[str, Position], prices: Prices, config: LedgerConfig, orders: Sequence[OrderTerms]
) -> npt.NDArray[np.float64]:
    """`order_im_usd` of the positions `held_by` (instrument -> position).

    The rows are built with numpy, O(orders × positions) without a Python step per pair: row k + 1
    is the positions now without the order's instrument, plus that instrument at q0 + dq
    contracts when not flat. Its entry price is the order's: IM reads contracts only (the tiered
    notional, the option unit margins), never the entry, which moves the value alone (and a fill's
    averaged entry is still positive, as 1/E of an inverse instrument needs)."""
    index = config.instruments.index
    held = sorted((index[i], float(p.quantity), p.entry_price) for i, p in held_by.items())
    now = np.array(held, dtype=np.float64).reshape(len(held), 3)  # (P, 3): instrument, contracts, entry
    terms = np.array([(index[o[0]], o[1], o[2]) for o in orders], dtype=np.float64).reshape(len(orders), 3)
    same = now[None, :, 0] == terms[:, None, 0]  # (N, P): the order's instrument, if held
    q1 = np.where(same, now[None, :, 1], 0.0).sum(axis=1) + terms[:, 1]  # at most one term: exact
    k, p = np.nonzero(~same)  # the other positions of each row, in row order
    filled = np.flatnonzero(q1 != 0.0)
    n_now, n_kept = len(now), len(k)
    rows = np.empty((n_now + n_kept + len(filled), 4))
    rows[:n_now, 0] = 0.0
    rows[:n_now, 1:] = now
    rows[n_now : n_now + n_kept, 0] = k + 1
    rows[n_now : n_now + n_kept, 1:] = now[p]
    rows[n_now + n_kept :, 0] = filled + 1
    rows[n_now + n_kept :, 1] = terms[filled, 0]
    rows[n_now + n_kept :, 2] = q1[filled]
    rows[n_now + n_kept :, 3] = terms[filled, 2]
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]  # by row, then instrument
    # IM reads positions only: the rows carry no collateral.
    balances = np.zeros((len(orders) + 1, config.assets.n_assets))
    result = margin_of_rows(priced_market(prices, config), config, np.ascontiguousarray(rows), balances)
    return result.initial_margin_usd


def im_with_order_by_risk_view(
    state: LedgerState, config: LedgerConfig, account: str, order: OrderTerms
) -> float:
    """The reference for one row of `order_im_usd`: the account's IM with `order` filled, as a
    ledger transaction trading it with the liquidator (no fee: a reservation measures risk, not
    cost) and a risk view of the result. O(the state) of Python per order: the definition the
    one-call path is tested and benchmarked against, not a hot path."""
    tx = Tx(config, state)
    tx.trade(account, LIQUIDATOR, order[0], order[1], order[2], "what_if")
    return float(risk_view(tx.snapshot(), config, (account,)).result.initial_margin_usd[0])

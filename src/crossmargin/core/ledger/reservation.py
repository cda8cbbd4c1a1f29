"""Initial margin an account's open orders reserve: one kernel row per distinct order size.

A resting order that would increase risk is charged the IM it would add if filled at its price,
each order on its own (Binance's and Deribit's open-order margin, summed conservatively):

    reserved = Σ_orders max(IM(positions with the order filled) − IM(positions now), 0)

summed exactly and rounded once (the float nearest the real sum, as `math.fsum` of the terms), so
the total does not depend on the order the orders are taken in.

IM is a sum over positions' contracts only (collateral and entry prices enter equity, never IM),
so an order's term is a function of its instrument and signed contracts alone, never of its
limit price: a market maker's thousand resting orders are a few dozen distinct sizes (instrument,
contracts), each counted. The reservation is one few-accounts kernel call
(`state.margin_of_rows`) over row 0, the positions now, and one row per distinct size, the
positions with one such order filled, then Σ count × term, exact: O(distinct sizes), not O(orders),
on every check that reads it (a new order, a withdrawal, a fill, a margin row). The venue's fold
keeps each account's sizes counted (`VenueState.order_sizes_of`).

Held to the per-order reference bit for bit (tests/core/ledger/test_reservation.py:
`im_with_order_by_risk_view`, a ledger transaction and a risk view per order, kept here as the
definition; bench/bench_orders.py).
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import numpy.typing as npt

from crossmargin.core.ledger.postings import LIQUIDATOR
from crossmargin.core.ledger.state import (
    LedgerConfig,
    LedgerState,
    Position,
    Prices,
    held_rows,
    margin_of_rows,
    priced_market,
    risk_view,
)
from crossmargin.core.ledger.transact import Tx
from crossmargin.core.margin import MarginResult

# An order as the reservation reads it: (instrument, contracts signed, limit price).
OrderTerms = tuple[str, int, float]
# An order size: (instrument, contracts signed), what its reservation term depends on.
OrderSize = tuple[str, int]


def order_sizes(orders: Iterable[OrderTerms]) -> Counter[OrderSize]:
    """How many of `orders` there are of each size (instrument, contracts)."""
    return Counter((instrument, quantity) for instrument, quantity, _ in orders)


def reserved_im_usd(
    state: LedgerState, config: LedgerConfig, account: str, orders: Sequence[OrderTerms]
) -> float:
    """IM `orders` reserve for `account` on `state`, USD (module docstring); 0 without orders."""
    return reserved_im_of(_held_by(state, account), state, config, order_sizes(orders))


def reserved_im_of(
    held: Mapping[str, Position], prices: Prices, config: LedgerConfig, sizes: Mapping[OrderSize, int]
) -> float:
    """`reserved_im_usd` of an account holding `held` (instrument -> position) in the market of
    `prices` (a ledger state or the venue's fold), with `sizes[(instrument, contracts)]` resting
    orders of each size."""
    return _margin_and_reserved(held, None, prices, config, sizes)[1] if sizes else 0.0


def margin_and_reserved(
    held: Mapping[str, Position],
    balances: Sequence[float],
    prices: Prices,
    config: LedgerConfig,
    sizes: Mapping[OrderSize, int],
) -> tuple[MarginResult, float]:
    """The account's cross margin now (row 0 of the result: what `state.risk_view` gives an
    account holding `held` and `balances`, float asset amounts in asset order, bit for bit) and
    its orders' reservation (0 without orders), in one kernel call: IM never reads balances, so
    row 0 with them is the reservation's row 0. For a decision that reads both (a new order)."""
    return _margin_and_reserved(held, balances, prices, config, sizes)


def _margin_and_reserved(
    held: Mapping[str, Position],
    balances: Sequence[float] | None,
    prices: Prices,
    config: LedgerConfig,
    sizes: Mapping[OrderSize, int],
) -> tuple[MarginResult, float]:
    """The kernel call of both public forms: rows `_order_margin`'s, then Σ counts[k]·max(im[k + 1]
    − im[0], 0), exactly (module docstring)."""
    distinct = sorted(sizes)
    result = _order_margin(held, prices, config, distinct, balances=balances)
    im = result.initial_margin_usd
    terms = np.maximum(im[1:] - im[0], 0.0)
    return result, exact_weighted_sum(terms.tolist(), [sizes[size] for size in distinct])


def exact_weighted_sum(terms: Sequence[float], counts: Sequence[int]) -> float:
    """Σ counts[k]·terms[k] rounded once to the nearest float (ties to even): the value
    `math.fsum` gives for the terms each repeated counts[k] times, in O(len(terms)). Every finite
    float is an integer over a power of two (`float.as_integer_ratio`), so the sum is an exact
    integer over the largest denominator, and Python's int / int true division rounds it
    correctly (https://docs.python.org/3/library/stdtypes.html#numeric-types-int-float-complex)."""
    if not all(map(math.isfinite, terms)):  # no exact form: IEEE's inf or NaN, as a plain sum
        return float(sum(c * t for t, c in zip(terms, counts, strict=True)))
    ratios = [term.as_integer_ratio() for term in terms]
    denominator = max((d for _, d in ratios), default=1)
    numerator = sum(c * n * (denominator // d) for (n, d), c in zip(ratios, counts, strict=True))
    try:
        return numerator / denominator
    except OverflowError:  # past the largest float: IEEE's infinity, as a plain sum would give
        return math.inf if numerator > 0 else -math.inf


def order_im_usd(
    state: LedgerState, config: LedgerConfig, account: str, orders: Sequence[OrderTerms]
) -> npt.NDArray[np.float64]:
    """(1 + len(orders),) the account's IM now, then with each order filled on its own, USD."""
    sizes = [(instrument, quantity) for instrument, quantity, _ in orders]
    return _order_margin(_held_by(state, account), state, config, sizes).initial_margin_usd


def _held_by(state: LedgerState, account: str) -> dict[str, Position]:
    return {i: p for (a, i), p in state.positions.items() if a == account}


def _order_margin(
    held_by: Mapping[str, Position],
    prices: Prices,
    config: LedgerConfig,
    sizes: Sequence[OrderSize],
    *,
    balances: Sequence[float] | None = None,
) -> MarginResult:
    """Cross margin of 1 + len(sizes) rows: the positions `held_by` (instrument -> position) with
    `balances` (float asset amounts; none: zero), then with an order of each size filled on its
    own, without balances (their IM is what a reservation reads).

    The rows are built with numpy, O(sizes × positions) without a Python step per pair: row k + 1
    is the positions now without the order's instrument, plus that instrument at q0 + dq
    contracts when not flat. Its entry price is 1 (any positive price: IM reads contracts only,
    the tiered notional and the option unit margins, never the entry, which moves the value
    alone; positive, as 1/E of an inverse instrument needs)."""
    index = config.instruments.index
    now = held_rows(config, [held_by])[:, 1:]  # (P, 3): instrument, contracts, entry
    terms = np.array([(index[i], q) for i, q in sizes], dtype=np.float64).reshape(len(sizes), 2)
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
    rows[n_now + n_kept :, 3] = 1.0
    rows = rows[np.lexsort((rows[:, 1], rows[:, 0]))]  # by row, then instrument
    # IM reads positions only: the order rows carry no collateral.
    amounts = np.zeros((len(sizes) + 1, config.assets.n_assets))
    if balances is not None:
        amounts[0] = balances
    return margin_of_rows(priced_market(prices, config), config, np.ascontiguousarray(rows), amounts)


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

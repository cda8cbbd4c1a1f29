"""The reservation of open orders in one kernel call over their distinct sizes
(core.ledger.reservation) has the bits of the per-order reference: for each order a ledger
transaction trading it with the liquidator and a risk view of the account on the result, the
terms summed exactly (math.fsum)."""

from __future__ import annotations

import functools
import math
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.adapters.files import load_book
from crossmargin.core.ledger.reservation import (
    OrderTerms,
    exact_weighted_sum,
    im_with_order_by_risk_view,
    margin_and_reserved,
    order_im_usd,
    order_sizes,
    reserved_im_usd,
)
from crossmargin.core.ledger.state import LedgerConfig, LedgerState, balance_amounts, risk_view
from crossmargin.engine.simulation import simulation_from_book

DESK = Path(__file__).resolve().parents[3] / "examples" / "desk.yaml"


@functools.cache
def _desk() -> tuple[LedgerState, LedgerConfig]:
    sim = simulation_from_book(load_book(DESK))
    return sim.state, sim.config


def _reference_reserved(
    state: LedgerState, config: LedgerConfig, account: str, orders: list[OrderTerms]
) -> float:
    im_now = float(risk_view(state, config, (account,)).result.initial_margin_usd[0])
    return math.fsum(
        max(im_with_order_by_risk_view(state, config, account, order) - im_now, 0.0) for order in orders
    )


@st.composite
def order_sets(draw: st.DrawFn) -> tuple[str, list[OrderTerms]]:
    """An account of the desk and up to 12 orders on what it holds and what it does not: linear and
    inverse perpetuals, an inverse future, options; buys and sells of any size (adds,
    reductions, closes, flips), at prices around the market."""
    state, config = _desk()
    account = draw(st.sampled_from(state.traders))
    instruments = [i for i in config.instruments.ids if i != "BTC-USDC"]  # spot is a balance
    held = {i: p.quantity for (a, i), p in state.positions.items() if a == account}
    orders = []
    for _ in range(draw(st.integers(1, 12))):
        instrument = draw(st.sampled_from(instruments))
        quantity = draw(
            st.one_of(
                st.integers(-50, 50).filter(bool),
                st.just(-held.get(instrument, 1) or 1),  # a close, where it holds one
            )
        )
        price = draw(st.floats(0.5, 2.0)) * (90_000.0 if "BTC" in instrument else 3_000.0)
        orders.append((instrument, quantity, price))
    return account, orders


@settings(max_examples=120, deadline=None)
@given(case=order_sets())
def test_one_kernel_call_has_the_bits_of_a_risk_view_per_order(case: tuple[str, list[OrderTerms]]) -> None:
    state, config = _desk()
    account, orders = case
    im = order_im_usd(state, config, account, orders)
    assert im[0] == float(risk_view(state, config, (account,)).result.initial_margin_usd[0])
    for k, order in enumerate(orders, start=1):
        assert im[k] == im_with_order_by_risk_view(state, config, account, order), order
    reserved = reserved_im_usd(state, config, account, orders)
    assert reserved == _reference_reserved(state, config, account, orders)
    # An order's term reads its size alone: other prices, another order of the orders, the same bits.
    repriced = [(i, q, p * 1.37) for i, q, p in reversed(orders)]
    assert reserved_im_usd(state, config, account, repriced) == reserved


@settings(max_examples=60, deadline=None)
@given(case=order_sets())
def test_margin_and_reservation_in_one_call_are_the_risk_view_and_the_reservation(
    case: tuple[str, list[OrderTerms]],
) -> None:
    """Row 0 of the one call carries the account's balances: its margin is the risk view's, bit
    for bit, and the reservation read beside it is `reserved_im_usd`'s."""
    state, config = _desk()
    account, orders = case
    held = {i: p for (a, i), p in state.positions.items() if a == account}
    result, reserved = margin_and_reserved(
        held, balance_amounts(state.balances, config, account), state, config, order_sizes(orders)
    )
    view = risk_view(state, config, (account,)).result
    for field in ("equity_usd", "initial_margin_usd", "maintenance_margin_usd", "available_usd"):
        assert getattr(result, field)[0] == getattr(view, field)[0], field
    assert reserved == reserved_im_usd(state, config, account, orders)


def test_no_orders_reserve_nothing_and_a_risk_reducing_order_reserves_nothing() -> None:
    state, config = _desk()
    account = state.traders[0]
    assert reserved_im_usd(state, config, account, []) == 0.0
    (instrument, position), *_ = [(i, p) for (a, i), p in state.positions.items() if a == account]
    closing = (instrument, -position.quantity, 90_000.0)
    assert reserved_im_usd(state, config, account, [closing]) == 0.0
    adding = (instrument, position.quantity, 90_000.0)
    assert reserved_im_usd(state, config, account, [adding]) > 0.0


FINITE = st.floats(min_value=0.0, max_value=1e300)  # x 2,000 stays finite


@given(terms=st.lists(st.tuples(FINITE, st.integers(1, 2_000)), max_size=30))
def test_exact_weighted_sum_is_fsum_of_the_repeated_terms(terms: list[tuple[float, int]]) -> None:
    """Σ count·term rounded once: what math.fsum gives for each term repeated `count` times (the
    reservation of a thousand resting orders of one size, one multiply-add of integers). Terms
    are IM differences (≥ 0); their full range of exponents, subnormals included."""
    values = [t for t, _ in terms]
    counts = [c for _, c in terms]
    repeated = [t for t, c in terms for _ in range(c)]
    expected = math.fsum(repeated) if repeated else 0.0
    assert exact_weighted_sum(values, counts) == expected


def test_exact_weighted_sum_rounds_once_where_a_running_sum_does_not() -> None:
    # 1e16 + 1 + 1: a running float sum loses both ones (ties to even), the exact sum keeps them.
    assert 1e16 + 1.0 + 1.0 == 1e16
    assert exact_weighted_sum([1e16, 1.0], [1, 2]) == 1e16 + 2.0
    assert math.isinf(exact_weighted_sum([math.inf, 1.0], [1, 3]))
    assert exact_weighted_sum([1.5e308], [2]) == math.inf  # past the largest float

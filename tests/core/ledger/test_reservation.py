"""The reservation of open orders in one kernel call (core.ledger.reservation) has the bits of the
per-order reference it replaced: for each order a ledger transaction trading it with the
liquidator and a risk view of the account on the result."""

from __future__ import annotations

import functools
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from crossmargin.adapters.files import load_book
from crossmargin.core.ledger.reservation import (
    OrderTerms,
    im_with_order_by_risk_view,
    order_im_usd,
    reserved_im_usd,
)
from crossmargin.core.ledger.state import LedgerConfig, LedgerState, risk_view
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
    total = 0.0
    for order in orders:
        total += max(im_with_order_by_risk_view(state, config, account, order) - im_now, 0.0)
    return total


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
    assert reserved_im_usd(state, config, account, orders) == _reference_reserved(
        state, config, account, orders
    )


def test_no_orders_reserve_nothing_and_a_risk_reducing_order_reserves_nothing() -> None:
    state, config = _desk()
    account = state.traders[0]
    assert reserved_im_usd(state, config, account, []) == 0.0
    (instrument, position), *_ = [(i, p) for (a, i), p in state.positions.items() if a == account]
    closing = (instrument, -position.quantity, 90_000.0)
    assert reserved_im_usd(state, config, account, [closing]) == 0.0
    adding = (instrument, position.quantity, 90_000.0)
    assert reserved_im_usd(state, config, account, [adding]) > 0.0

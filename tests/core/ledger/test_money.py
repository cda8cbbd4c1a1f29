"""The boundary between ledger units and risk floats: `to_float` is the float of the exact
decimal, for every int a ledger holds and every allowed number of decimals."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_FLOOR, Context, Decimal

from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.ledger.money import MAX_DECIMALS, to_float, units_charge, units_payout, units_signed_pnl

EXACT = Context(prec=100)  # more digits than any int drawn here: scaleb rounds nothing
DECIMALS = st.integers(0, MAX_DECIMALS)


@given(units=st.integers(-(2**63), 2**63), decimals=DECIMALS)
def test_to_float_equals_the_decimal_conversion_it_replaced(units: int, decimals: int) -> None:
    """Every int a ledger column holds (signed 64-bit): the same float as before, bit for bit."""
    assert to_float(units, decimals) == float(Decimal(units).scaleb(-decimals))


@given(units=st.integers(-(10**60), 10**60), decimals=DECIMALS)
def test_to_float_is_the_float_of_the_exact_decimal(units: int, decimals: int) -> None:
    assert to_float(units, decimals) == float(Decimal(units).scaleb(-decimals, context=EXACT))


def test_to_float_rounds_to_nearest() -> None:
    # 2**53 + 1 units of a 0-decimal asset is not a float: the nearest one is 2**53 (ties to even).
    assert to_float(2**53 + 1, 0) == float(2**53)
    assert to_float(1, 8) == 1e-8 and to_float(-123_456_789, 6) == -123.456789


def _decimal_charge(amount: float, decimals: int) -> int:
    """The conversion `units_charge` replaced (decimal.Decimal(float), the default context)."""
    return int(Decimal(amount).scaleb(decimals).to_integral_value(rounding=ROUND_CEILING))


def _decimal_payout(amount: float, decimals: int) -> int:
    return int(Decimal(amount).scaleb(decimals).to_integral_value(rounding=ROUND_FLOOR))


POSTABLE = 2**63  # a posting is a signed 64-bit integer of units (engine.venue.decide.MAX_UNITS)


@given(amount=st.floats(allow_nan=False, allow_infinity=False), decimals=DECIMALS)
def test_charges_and_payouts_equal_the_decimal_conversion_they_replaced(amount: float, decimals: int) -> None:
    """Every finite float whose scaled amount can be posted: the same units, up and down, as the
    Decimal conversion (whose 28-digit context rounds nothing there); signed PnL both ways."""
    if abs(amount) * 10.0**decimals >= POSTABLE:
        return
    assert units_charge(amount, decimals) == _decimal_charge(amount, decimals)
    assert units_payout(amount, decimals) == _decimal_payout(amount, decimals)
    expected = _decimal_payout(amount, decimals) if amount >= 0.0 else -_decimal_charge(-amount, decimals)
    assert units_signed_pnl(amount, decimals) == expected


def test_rounding_is_exact_at_the_unit_boundary() -> None:
    """0.1 is 0.1000000000000000055511...: at 18 decimals 100000000000000005.55... units, a charge
    rounds it up and a payout down; an exact binary amount rounds to itself either way."""
    assert units_charge(0.1, 18) == 100_000_000_000_000_006
    assert units_payout(0.1, 18) == 100_000_000_000_000_005
    assert units_charge(0.5, 6) == units_payout(0.5, 6) == 500_000
    assert units_charge(-0.1, 6) == -100_000 and units_payout(-0.1, 6) == -100_001

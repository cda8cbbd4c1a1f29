"""The boundary between ledger units and risk floats: `to_float` is the float of the exact
decimal, for every int a ledger holds and every allowed number of decimals."""

from __future__ import annotations

from decimal import Context, Decimal

from hypothesis import given
from hypothesis import strategies as st

from crossmargin.core.ledger.money import MAX_DECIMALS, to_float

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

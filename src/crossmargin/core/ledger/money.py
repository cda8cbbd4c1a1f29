"""The one boundary between risk math (float64) and ledger money (integer minor units).

Every ledger amount is an `int` number of minor units of one asset; an asset's quantum is
10**-decimals (USDC 6 decimals, BTC 8). Risk math produces float64 amounts; they enter the
ledger only through this module, rounded in a stated direction:

- `units_charge`: what a trader owes (losses, fees, funding paid, interest, requirements) rounds
  UP, against the trader;
- `units_payout`: what a trader receives (profits, funding received, payouts) rounds DOWN, for
  the venue, so the venue never pays out a unit it did not collect.

Conversion goes through `decimal.Decimal(float)`, which is exact, so the rounding is the only
approximation and it happens once.
"""

from __future__ import annotations

import math
from decimal import ROUND_CEILING, ROUND_FLOOR, Decimal

from crossmargin.errors import InputError

MAX_DECIMALS = 18


def _scaled(amount: float, decimals: int, name: str) -> Decimal:
    if not math.isfinite(amount):
        raise InputError(name, f"must be finite, got {amount!r}")
    if not 0 <= decimals <= MAX_DECIMALS:
        raise InputError(f"{name}.decimals", f"must lie in [0, {MAX_DECIMALS}], got {decimals!r}")
    return Decimal(amount).scaleb(decimals)


def units_charge(amount: float, decimals: int, *, name: str = "amount") -> int:
    """Minor units of a charge to a trader: ceil(amount · 10**decimals) (against the trader)."""
    return int(_scaled(amount, decimals, name).to_integral_value(rounding=ROUND_CEILING))


def units_payout(amount: float, decimals: int, *, name: str = "amount") -> int:
    """Minor units of a payout to a trader: floor(amount · 10**decimals) (for the venue)."""
    return int(_scaled(amount, decimals, name).to_integral_value(rounding=ROUND_FLOOR))


def units_signed_pnl(pnl: float, decimals: int, *, name: str = "pnl") -> int:
    """A trader's signed PnL in units: a gain is a payout (down), a loss a charge (up), so
    both directions round against the trader."""
    return units_payout(pnl, decimals, name=name) if pnl >= 0.0 else -units_charge(-pnl, decimals, name=name)


def to_float(units: int, decimals: int) -> float:
    """Units back to asset amount, for risk math only (never posted): units / 10**decimals
    correctly rounded to float64. Python's int true division rounds the exact quotient correctly
    for any size of int, so this is the float of the exact decimal (tests hold it equal to
    `float(Decimal(units).scaleb(-decimals))`, the conversion it replaces) at a fifth of its cost:
    a whole venue's balances pass through it when the monitor's book is built."""
    scale: int = 10**decimals  # an int: the quotient of two ints, not of a rounded float
    return units / scale

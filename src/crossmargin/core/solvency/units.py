"""Float64 balances to exact integer minor units, vectorised, rounded in a stated direction.

`core.ledger.money.units_charge` converts one amount through `Decimal`; a book of a million
accounts needs the same answer for arrays. A float64 b and the power of ten s = 10**d (exact for
d <= 22) have an exact product x = p + e with p = fl(b·s) and e a float64 (Dekker's TwoProduct by
Veltkamp splitting: Dekker 1971, "A floating-point technique for extending the available
precision", Numer. Math. 18). Then ceil(x) = ceil(p) when p is not an integer (no integer lies
between p and x: it would be representable and nearer to x than p), and p + ceil(e) when it is.

A book's balance is text such as `9.8`, read as the nearest double (9.80000000000000071...): its
exact ceiling in satoshi would be 980,000,001. So a value within half a float64 spacing of a whole
number of units (the double nearest to a decimal of at most `decimals` places) converts to it;
everything else rounds in the stated direction, exactly. The answer equals rounding the
shortest decimal that reads back as the double (`repr`), which is what the book said.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

MAX_DECIMALS = 18
_SPLIT = 134217729.0  # 2**27 + 1: Veltkamp's splitter for float64
_MAX_UNITS = 2.0**62


def _split(a: FloatArray) -> tuple[FloatArray, FloatArray]:
    c = _SPLIT * a
    high = c - (c - a)
    return high, a - high


def exact_product(a: FloatArray, b: float) -> tuple[FloatArray, FloatArray]:
    """(p, e) with p = fl(a·b) and p + e = a·b exactly (no overflow, no underflow)."""
    p = a * b
    a_high, a_low = _split(a)
    b_high, b_low = _split(np.asarray(b, dtype=np.float64))
    e = ((a_high * b_high - p) + a_high * b_low + a_low * b_high) + a_low * b_low
    return p, e


def units_ceil(amounts: FloatArray, decimals: int, *, name: str = "amount") -> IntArray:
    """ceil(amount · 10**decimals) exactly, as int64; the answer `money.units_charge` gives for
    each element. Amounts must be finite and |units| < 2**62."""
    values = np.asarray(amounts, dtype=np.float64)
    if not 0 <= decimals <= MAX_DECIMALS:
        raise InputError(f"{name}.decimals", f"must lie in [0, {MAX_DECIMALS}], got {decimals}")
    if not np.all(np.isfinite(values)):
        raise InputError(name, "must be finite")
    p, e = exact_product(values, float(10**decimals))
    if values.size and float(np.max(np.abs(p))) >= _MAX_UNITS:
        raise InputError(name, f"{float(np.max(np.abs(values)))} does not fit 2**62 minor units")
    rounded = np.ceil(p)
    integral = rounded == p
    units: IntArray = rounded.astype(np.int64) + np.where(integral, np.ceil(e), 0.0).astype(np.int64)
    nearest = np.rint(p)
    half_spacing_units = np.spacing(np.abs(values)) * (0.5 * 10**decimals)
    snapped = np.abs((p - nearest) + e) <= half_spacing_units
    units[snapped] = nearest[snapped].astype(np.int64)
    return units


def units_floor(amounts: FloatArray, decimals: int, *, name: str = "amount") -> IntArray:
    """floor(amount · 10**decimals) exactly (`money.units_payout` per element)."""
    floored: IntArray = -units_ceil(-np.asarray(amounts, dtype=np.float64), decimals, name=name)
    return floored

"""Invariant checks that `python -O` cannot strip. One condition per check, so the message
names the field and the problem."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt

from crossmargin.errors import InputError


def check_finite(values: npt.ArrayLike, name: str) -> None:
    """Raise InputError unless every element is finite (no NaN, no ±inf)."""
    array = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(array)):
        bad = np.flatnonzero(~np.isfinite(array.ravel()))
        raise InputError(name, f"must be finite, got {array.ravel()[bad[0]]!r} at index {bad[0]}")


def check_positive(values: npt.ArrayLike, name: str) -> None:
    """Raise InputError unless every element is finite and > 0."""
    check_finite(values, name)
    array = np.asarray(values, dtype=np.float64)
    if not np.all(array > 0.0):
        bad = np.flatnonzero(~(array.ravel() > 0.0))
        raise InputError(name, f"must be > 0, got {array.ravel()[bad[0]]!r} at index {bad[0]}")


def check_nonnegative(values: npt.ArrayLike, name: str) -> None:
    """Raise InputError unless every element is finite and >= 0."""
    check_finite(values, name)
    array = np.asarray(values, dtype=np.float64)
    if not np.all(array >= 0.0):
        bad = np.flatnonzero(~(array.ravel() >= 0.0))
        raise InputError(name, f"must be >= 0, got {array.ravel()[bad[0]]!r} at index {bad[0]}")


def check_range(
    value: float,
    *,
    low: float,
    high: float,
    name: str,
    include_high: bool = True,
) -> None:
    """Raise InputError unless low <= value <= high (or < high when include_high is False)."""
    if not math.isfinite(value):
        raise InputError(name, f"must be finite, got {value!r}")
    above = value > high if include_high else value >= high
    if value < low or above:
        bracket = "]" if include_high else ")"
        raise InputError(name, f"must lie in [{low}, {high}{bracket}, got {value!r}")


def check_row(value: object, *, size: int, name: str) -> int:
    """Return `value` as a row index after checking it is an integer (not a bool) in [0, size);
    else InputError naming `name`. For scalar arguments of public calls, before compiled code."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise InputError(name, f"must be an integer row index, got {value!r}")
    row = int(value)
    if not 0 <= row < size:
        raise InputError(name, f"no row {row}: there are {size} (rows 0 to {size - 1})")
    return row


def check_number(value: object, name: str) -> float:
    """Return `value` as a float after checking it is a finite real number (not a bool or a
    string); else InputError naming `name`."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise InputError(name, f"must be a number, got {value!r}")
    number = float(value)
    if not math.isfinite(number):
        raise InputError(name, f"must be finite, got {number!r}")
    return number


def check_instance(value: object, kind: type, name: str) -> None:
    """Raise InputError naming `name` unless `value` is a `kind` (a model's params, say), so a
    wrong argument fails where it is passed, not deep inside the first evaluation."""
    if not isinstance(value, kind):
        raise InputError(name, f"must be a {kind.__name__}, got {type(value).__name__} {value!r}")


def check_all(condition: npt.ArrayLike, message: str) -> None:
    """Raise InputError(message) unless every element of `condition` is true."""
    if not bool(np.all(condition)):
        raise InputError("invariant", message)

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


def check_all(condition: npt.ArrayLike, message: str) -> None:
    """Raise InputError(message) unless every element of `condition` is true."""
    if not bool(np.all(condition)):
        raise InputError("invariant", message)

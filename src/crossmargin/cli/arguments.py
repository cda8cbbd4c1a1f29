"""Checks of command-line values shared by commands, each refusal naming the flag."""

from __future__ import annotations

import math

from crossmargin.errors import InputError


def check_usd(value: float, flag: str) -> None:
    """An amount of USD given on the command line: finite and >= 0 (NaN, inf and a negative fund
    or threshold mean nothing a run could honour)."""
    if not (math.isfinite(value) and value >= 0.0):
        raise InputError(flag, f"must be finite and >= 0 USD, got {value!r}")

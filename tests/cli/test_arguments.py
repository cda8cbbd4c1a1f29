"""Shared command-line checks (cli.arguments)."""

from __future__ import annotations

import pytest

from crossmargin.cli.arguments import check_usd
from crossmargin.errors import InputError


@pytest.mark.parametrize("value", [float("nan"), float("inf"), float("-inf"), -0.01])
def test_check_usd_refuses_what_is_not_an_amount_naming_the_flag(value: float) -> None:
    with pytest.raises(InputError) as refused:
        check_usd(value, "--fund")
    assert refused.value.field == "--fund" and repr(value) in refused.value.problem


@pytest.mark.parametrize("value", [0.0, 1.0, 1e12])
def test_check_usd_accepts_finite_non_negative_amounts(value: float) -> None:
    check_usd(value, "--fund")

"""core.scenarios.revalue_scenarios: an option whose forward and vol a scenario does not move is
worth exactly its value there, so an account loses exactly 0 in a scenario that moves nothing it
holds, whichever backend prices it (interpreted: numpy's log and exp; compiled: the C library's,
which differ in the last ulp on AVX-512 CPUs)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import numpy as np
import pytest
from hypothesis import HealthCheck, assume, given, settings

from crossmargin.core import jit
from crossmargin.core.margin.portfolio import risk_factors
from crossmargin.core.pricing import revalue
from crossmargin.core.scenarios import ScenarioSet, revalue_scenarios
from tests.builders import RandomBook, random_books


@contextmanager
def _mode(mode: str) -> Iterator[None]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(jit, "environment_mode", lambda: mode)
        yield


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(drawn=random_books(max_instruments=8))
def test_an_option_nothing_moves_loses_exactly_zero(drawn: RandomBook) -> None:
    book, market = drawn.book, drawn.market
    instruments = book.instruments
    valuation = revalue(instruments, market)
    factors = risk_factors(book)
    # Scenario 0 moves nothing; 1 every factor up 10 % and vols up 5 points; 2 vols alone.
    price = np.ones((3, len(factors)))
    price[1] = 1.1
    shift = np.zeros((3, instruments.n_instruments))
    shift[1:] = 0.05
    scenarios = ScenarioSet(
        factors=factors,
        price_factor=price,
        vol_shift=shift,
        weight=np.ones(3),
        group=np.zeros(3, dtype=np.int64),
        labels=("still", "up", "vol"),
    )
    options = np.flatnonzero(instruments.is_option)
    assume(options.size > 0)
    for mode in ("python", "numba"):
        with _mode(mode):
            reval = revalue_scenarios(instruments, book.assets, market, valuation, scenarios)
        assert not reval.d_unit_value_usd[options, 0].any(), mode
        assert np.isfinite(reval.d_unit_value_usd[options, 1:]).all(), mode

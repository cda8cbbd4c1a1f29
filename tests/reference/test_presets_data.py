"""The crossmargin-multi preset's correlations, re-estimated from the real price history.

CRYPTO_CORRELATION in core/margin/presets.py states daily log-return correlations of BTC, ETH and
SOL over 2021-01-01 .. 2025-02-11 from ../shared/data/prices_daily_yahoo.csv (Yahoo Finance via
budydeveloper/crypto-dataset @ 7791d624). This test recomputes them, so the constants cannot drift
from the data they cite.
"""

from __future__ import annotations

import csv
from collections import defaultdict

import numpy as np

from crossmargin.core.margin.presets import CRYPTO_CORRELATION
from tests.conftest import shared_data_dir

# The preset rounds to two decimals.
ROUNDING_TOLERANCE = 0.005
SYMBOLS = ("BTC", "ETH", "SOL")


def test_preset_correlations_match_the_daily_return_history() -> None:
    closes: dict[str, dict[str, float]] = defaultdict(dict)
    with (shared_data_dir() / "prices_daily_yahoo.csv").open(newline="") as handle:
        for row in csv.DictReader(handle):
            if row["symbol"] in SYMBOLS and "2021-01-01" <= row["date"] <= "2025-02-11":
                closes[row["date"]][row["symbol"]] = float(row["close_usd"])
    days = sorted(d for d, prices in closes.items() if len(prices) == len(SYMBOLS))
    assert len(days) > 1_400  # about four years of daily closes
    prices = np.array([[closes[d][s] for s in SYMBOLS] for d in days])
    correlation = np.corrcoef(np.diff(np.log(prices), axis=0).T)
    for (a, b), stated in CRYPTO_CORRELATION.items():
        measured = correlation[SYMBOLS.index(a), SYMBOLS.index(b)]
        assert abs(measured - stated) <= ROUNDING_TOLERANCE, (a, b, measured, stated)

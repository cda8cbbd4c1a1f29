"""In-memory daily price histories for engine tests: seeded geometric random walks, so VaR/ES
runs need no data file (`engine.memory.ArrayPriceHistory`)."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from crossmargin.engine.memory import ArrayPriceHistory

# Daily log-return volatility of the synthetic walks: crypto-like, and a pegged stablecoin.
CRYPTO_DAILY_VOL = 0.03
STABLE_DAILY_VOL = 0.0005
STABLES = ("USDC", "USDT", "DAI")


def random_walk_history(
    last_close_usd: Mapping[str, float], *, last_day: str, n_days: int = 1_200, seed: int = 7
) -> ArrayPriceHistory:
    """n_days closes ending on `last_day` at `last_close_usd`, one seeded Gaussian walk per symbol
    (stablecoins barely move)."""
    rng = np.random.default_rng(seed)
    symbols = tuple(last_close_usd)
    vol = np.array([STABLE_DAILY_VOL if s in STABLES else CRYPTO_DAILY_VOL for s in symbols])
    returns = rng.standard_normal((n_days - 1, len(symbols))) * vol
    # Walk backwards from the last close, so the book's prices sit at the end of the history.
    log_close = np.vstack([-np.cumsum(returns[::-1], axis=0)[::-1], np.zeros((1, len(symbols)))])
    close_usd = np.array(list(last_close_usd.values())) * np.exp(log_close)
    days = np.arange(np.datetime64(last_day, "D") - (n_days - 1), np.datetime64(last_day, "D") + 1)
    return ArrayPriceHistory.from_arrays(days=days, symbols=symbols, close_usd=close_usd)


# The example desk's risk factors (examples/desk.yaml valued 2025-12-30): closes up to the day before.
DESK_CLOSES_USD = {"BTC": 88_528.93, "ETH": 2_978.73, "SOL": 125.0, "USDC": 1.0, "USDT": 1.0}


def desk_history(seed: int = 7) -> ArrayPriceHistory:
    return random_walk_history(DESK_CLOSES_USD, last_day="2025-12-29", seed=seed)

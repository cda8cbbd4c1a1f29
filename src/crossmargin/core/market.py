"""Market state: everything that changes with prices, aligned to an InstrumentTable.

Shapes: index_price_usd (U,) per underlying; mark_price, implied_vol, forward_price_usd,
funding_rate_8h (I,) per instrument, NaN where the source gave nothing (defaults are filled by
`pricing.revalue`, never guessed here). `rate` is the continuously compounded risk-free rate per
year. Times are integer nanoseconds since the Unix epoch, UTC.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_finite, check_positive, check_range
from crossmargin.core.instruments import InstrumentKind, InstrumentTable
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]

NS_PER_YEAR = 365.0 * 24.0 * 3600.0 * 1e9  # ACT/365, Deribit and most crypto venues


@dataclass(frozen=True, slots=True, kw_only=True)
class MarketState:
    """Prices, vols and rates at one valuation time, aligned to one InstrumentTable."""

    valuation_ns: int
    underlyings: tuple[str, ...]
    index_price_usd: FloatArray
    rate: float
    mark_price: FloatArray
    implied_vol: FloatArray
    forward_price_usd: FloatArray
    funding_rate_8h: FloatArray

    def __post_init__(self) -> None:
        check_positive(self.index_price_usd, "market.index_prices")
        check_range(self.rate, low=-1.0, high=1.0, name="market.rate")
        for name in ("mark_price", "implied_vol", "forward_price_usd"):
            values = getattr(self, name)
            given = values[~np.isnan(values)]
            if name == "mark_price":
                check_finite(given, f"market.{name}")
                if np.any(given < 0.0):
                    raise InputError(f"market.{name}", f"must be >= 0, got {given[given < 0.0][0]!r}")
            else:
                check_positive(given, f"market.{name}")
        check_finite(self.funding_rate_8h, "market.funding_rate_8h")

    @classmethod
    def build(
        cls,
        instruments: InstrumentTable,
        *,
        valuation_ns: int,
        index_prices: Mapping[str, float],
        rate: float = 0.0,
        mark_prices: Mapping[str, float] | None = None,
        implied_vols: Mapping[str, float] | None = None,
        forward_prices: Mapping[str, float] | None = None,
        funding_rates_8h: Mapping[str, float] | None = None,
    ) -> MarketState:
        """Align per-symbol mappings to the instrument table. Unknown instrument ids and non-finite
        values are errors; index prices may name more symbols than the table's underlyings
        (collateral assets are priced from them)."""
        missing = [u for u in instruments.underlyings if u not in index_prices]
        if missing:
            raise InputError("market.index_prices", f"no index price for underlying {missing[0]!r}")
        expired = np.flatnonzero(
            (instruments.kind != InstrumentKind.PERPETUAL)
            & (instruments.kind != InstrumentKind.SPOT)
            & (instruments.expiry_ns <= valuation_ns)
        )
        if expired.size:
            raise InputError(
                f"instruments[{instruments.ids[expired[0]]}].expiry",
                "expired at or before valuation_time",
            )

        def aligned(values: Mapping[str, float] | None, name: str, fill: float) -> FloatArray:
            out = np.full(instruments.n_instruments, fill)
            for symbol, value in (values or {}).items():
                column = instruments.position(symbol, field_name=f"market.{name}")
                if not math.isfinite(value):
                    raise InputError(f"market.{name}", f"{symbol}: must be finite, got {value!r}")
                out[column] = value
            return out

        return cls(
            valuation_ns=valuation_ns,
            underlyings=instruments.underlyings,
            index_price_usd=np.array([index_prices[u] for u in instruments.underlyings], dtype=np.float64),
            rate=rate,
            mark_price=aligned(mark_prices, "mark_price", np.nan),
            implied_vol=aligned(implied_vols, "implied_vol", np.nan),
            forward_price_usd=aligned(forward_prices, "forward_price", np.nan),
            funding_rate_8h=aligned(funding_rates_8h, "funding_rate_8h", 0.0),
        )

    def years_to_expiry(self, instruments: InstrumentTable) -> FloatArray:
        """ACT/365 year fraction to expiry, (I,); +inf for perpetuals and spot."""
        no_expiry = instruments.expiry_ns == np.iinfo(np.int64).max
        # Subtract in int64 first: float64 would round epoch nanoseconds to 256 ns.
        remaining_ns = np.where(no_expiry, 0, instruments.expiry_ns - self.valuation_ns)
        years = remaining_ns.astype(np.float64) / NS_PER_YEAR
        result: FloatArray = np.where(no_expiry, np.inf, years)
        return result

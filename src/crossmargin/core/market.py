"""Market state: every price, aligned to an InstrumentTable and an AssetTable.

Shapes: index_price_usd (U,) per underlying; mark_price, implied_vol, forward_price_usd,
funding_rate_8h (I,) per instrument, NaN where the source gave nothing (defaults are filled by
`pricing.revalue`, never guessed here); asset_price_usd (K,) per collateral asset, in the order of
`asset_symbols` (the book's AssetTable.symbols). `rate` is the continuously compounded risk-free
rate per year. Times are integer nanoseconds since the Unix epoch, UTC.

The book (positions and balances) holds no price: a tick is a new MarketState over the same book.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

import numpy as np
import numpy.typing as npt

from crossmargin.core.assets import AssetTable
from crossmargin.core.checks import check_finite, check_positive, check_range
from crossmargin.core.instruments import InstrumentKind, InstrumentTable
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]

NS_PER_YEAR = 365.0 * 24.0 * 3600.0 * 1e9  # ACT/365, Deribit and most crypto venues


def _no_prices() -> FloatArray:
    return np.zeros(0, dtype=np.float64)


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
    asset_symbols: tuple[str, ...] = ()
    asset_price_usd: FloatArray = field(default_factory=_no_prices)

    def __post_init__(self) -> None:
        check_positive(self.index_price_usd, "market.index_prices")
        if self.asset_price_usd.shape != (len(self.asset_symbols),):
            raise InputError(
                "market.asset_prices",
                f"{self.asset_price_usd.shape} prices for {len(self.asset_symbols)} assets",
            )
        check_positive(self.asset_price_usd, "market.asset_prices")
        self._check_one_price_per_asset()
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
        asset_symbols: Sequence[str] = (),
        asset_prices: Mapping[str, float] | None = None,
    ) -> MarketState:
        """Align per-symbol mappings to the instrument table and the collateral assets. Unknown
        instrument ids and non-finite values are errors; index prices may name more symbols than
        the table's underlyings: a collateral asset without an entry in `asset_prices` is priced
        at its index price, and one with both must agree (one price per asset)."""
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
            asset_symbols=tuple(asset_symbols),
            asset_price_usd=collateral_prices(asset_symbols, index_prices, asset_prices or {}),
        )

    def _check_one_price_per_asset(self) -> None:
        """A collateral asset that is also an underlying has one price, its index price: every
        path that moves one (a tick, a scenario, a day of history) moves both."""
        index = dict(zip(self.underlyings, self.index_price_usd.tolist(), strict=True))
        for symbol, price in zip(self.asset_symbols, self.asset_price_usd.tolist(), strict=True):
            if symbol in index and index[symbol] != price:
                raise InputError(
                    f"market.asset_prices.{symbol}",
                    f"{price:.15g} disagrees with the index price {index[symbol]:.15g} of the same asset",
                )

    def asset_prices(self, assets: AssetTable) -> FloatArray:
        """USD per unit of each collateral asset, aligned to `assets` (K,)."""
        if self.asset_symbols != assets.symbols:
            raise InputError(
                "market.asset_prices",
                f"priced for assets {list(self.asset_symbols)}, the book has {list(assets.symbols)}",
            )
        return self.asset_price_usd

    def for_assets(self, assets: AssetTable, prices: Mapping[str, float] | None = None) -> MarketState:
        """This market priced for `assets`' collateral: each asset at its own price in `prices`,
        else at its index price (an asset that is an underlying here); both given must agree."""
        index = dict(zip(self.underlyings, self.index_price_usd.tolist(), strict=True))
        return replace(
            self,
            asset_symbols=assets.symbols,
            asset_price_usd=collateral_prices(assets.symbols, index, prices or {}),
        )

    def with_index_prices(self, index_price_usd: npt.ArrayLike) -> MarketState:
        """Same market with the underlyings at other index prices (U,), a collateral asset that is
        also an underlying moving with its index (one price per asset, `__post_init__`)."""
        index = np.asarray(index_price_usd, dtype=np.float64)
        column = {u: n for n, u in enumerate(self.underlyings)}
        assets = self.asset_price_usd.copy()
        for k, symbol in enumerate(self.asset_symbols):
            if symbol in column:
                assets[k] = index[column[symbol]]
        return replace(self, index_price_usd=index, asset_price_usd=assets)

    def with_asset_prices(self, price_usd: npt.ArrayLike) -> MarketState:
        """Same market with the collateral assets at other prices (a tick, a scenario)."""
        return replace(self, asset_price_usd=np.asarray(price_usd, dtype=np.float64))

    def years_to_expiry(self, instruments: InstrumentTable) -> FloatArray:
        """ACT/365 year fraction to expiry, (I,); +inf for perpetuals and spot."""
        no_expiry = instruments.expiry_ns == np.iinfo(np.int64).max
        # Subtract in int64 first: float64 would round epoch nanoseconds to 256 ns.
        remaining_ns = np.where(no_expiry, 0, instruments.expiry_ns - self.valuation_ns)
        years = remaining_ns.astype(np.float64) / NS_PER_YEAR
        result: FloatArray = np.where(no_expiry, np.inf, years)
        return result


def collateral_prices(
    symbols: Sequence[str], index_prices: Mapping[str, float], asset_prices: Mapping[str, float]
) -> FloatArray:
    """One USD price per collateral asset: its own price, else its index price. Both given and
    different is an error naming both fields, never a silent choice."""
    unknown = sorted(set(asset_prices) - set(symbols))
    if unknown:
        raise InputError(f"market.asset_prices.{unknown[0]}", "not a collateral asset of the book")
    out = np.empty(len(symbols), dtype=np.float64)
    for k, symbol in enumerate(symbols):  # K assets, a handful
        own, index = asset_prices.get(symbol), index_prices.get(symbol)
        if own is not None and index is not None and own != index:
            raise InputError(
                f"assets[{symbol}].price_usd",
                f"{own:.15g} disagrees with market.index_prices.{symbol} {index:.15g}",
            )
        price = own if own is not None else index
        if price is None:
            raise InputError(f"assets[{symbol}].price_usd", "missing, and no market.index_prices entry")
        check_positive(price, f"assets[{symbol}].price_usd")
        out[k] = price
    return out

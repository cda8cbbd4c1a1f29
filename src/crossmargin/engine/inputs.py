"""The engine's input value types: what a caller hands the engine, whatever it was read from.

Adapters build these (a book file, a quote file, a CSV price path); a service, a Dask worker or a
test builds them from memory. The engine never asks where they came from.

    LoadedBook      a validated book, its market and its model parameters
    QuoteTable      timestamped source quotes, struct of arrays (n_quotes,), sorted by time
    PricePathStep   one step of a simulated price path: (as_of_ns, {symbol: index price USD})

`PriceHistory` (daily closes, (T days, N symbols), USD) is a core value type
(`core.var.history`); the engine re-exports it here so a caller needs one import.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin import CrossParams
from crossmargin.core.margin.portfolio import PortfolioParams
from crossmargin.core.margin.presets import PortfolioOverrides
from crossmargin.core.market import MarketState
from crossmargin.core.var.history import PriceHistory
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

__all__ = ["LoadedBook", "PriceHistory", "PricePathStep", "QuoteTable"]

# (as_of_ns, {symbol: index price USD}): one row of a price path (`engine.simulation.run_price_path`).
PricePathStep = tuple[int, Mapping[str, float]]


@dataclass(frozen=True, slots=True)
class LoadedBook:
    """A validated book with its market and model parameters, ready for the engine.

    `path` names where the book came from (a file path, or any label: it is echoed in reports);
    `default_model` is the model a run uses when none is asked for; `portfolio` the book's
    portfolio-margin parameters (its preset with its overrides applied) and `portfolio_overrides`
    those overrides alone, which a `--preset` flag keeps on top of the preset it names;
    `tier_preset` a venue tier table the cross and isolated models apply (None: the book's own
    schedules)."""

    path: str
    book: Book
    market: MarketState
    params: CrossParams
    default_model: str
    source: str | None
    portfolio: PortfolioParams
    tier_preset: str | None = None
    portfolio_overrides: PortfolioOverrides = field(default_factory=PortfolioOverrides)


@dataclass(frozen=True, slots=True)
class QuoteTable:
    """Quotes sorted by time, struct of arrays (n_quotes,): time_ns (ns since the epoch, UTC),
    asset_index, source_index (into `assets` and `sources`), price_usd (> 0), weight (a source's
    confidence or volume weight, 1 by default)."""

    assets: tuple[str, ...]
    sources: tuple[str, ...]
    time_ns: IntArray
    asset_index: IntArray
    source_index: IntArray
    price_usd: FloatArray
    weight: FloatArray

    def __len__(self) -> int:
        return int(self.time_ns.shape[0])

    @staticmethod
    def from_columns(
        *,
        time_ns: npt.ArrayLike,
        asset: list[str],
        source: list[str],
        price_usd: npt.ArrayLike,
        weight: npt.ArrayLike | None = None,
        assets: tuple[str, ...] | None = None,
        sources: tuple[str, ...] | None = None,
    ) -> QuoteTable:
        """Build from row columns; assets/sources default to the sorted distinct names."""
        times = np.asarray(time_ns, dtype=np.int64)
        prices = np.asarray(price_usd, dtype=np.float64)
        weights = np.ones_like(prices) if weight is None else np.asarray(weight, dtype=np.float64)
        if not (len(asset) == len(source) == times.shape[0] == prices.shape[0] == weights.shape[0]):
            raise InputError("quotes", "columns differ in length")
        asset_names = assets if assets is not None else tuple(sorted(set(asset)))
        source_names = sources if sources is not None else tuple(sorted(set(source)))
        asset_lookup = {name: i for i, name in enumerate(asset_names)}
        source_lookup = {name: i for i, name in enumerate(source_names)}
        unknown = (set(asset) - asset_lookup.keys()) | (set(source) - source_lookup.keys())
        if unknown:
            raise InputError("quotes", f"unknown asset or source names {sorted(unknown)[:5]}")
        order = np.argsort(times, kind="stable")
        return QuoteTable(
            assets=asset_names,
            sources=source_names,
            time_ns=times[order],
            asset_index=np.array([asset_lookup[a] for a in asset], dtype=np.int64)[order],
            source_index=np.array([source_lookup[s] for s in source], dtype=np.int64)[order],
            price_usd=prices[order],
            weight=weights[order],
        )

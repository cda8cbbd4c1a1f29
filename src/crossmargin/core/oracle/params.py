"""Per-asset oracle parameters: frozen, validated value types, and their struct-of-arrays form.

`OracleParams` describes one asset. `ParamTable.stack` turns a tuple of them into arrays of shape
(n_assets,) so that one update aggregates every asset with numpy over an assets × sources matrix.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NS_PER_SECOND = 1_000_000_000
NS_PER_MS = 1_000_000
# MAD of a normal sample times this is its standard deviation (1 / Φ⁻¹(3/4)).
MAD_TO_SIGMA = 1.4826


@dataclass(frozen=True, slots=True, kw_only=True)
class OracleParams:
    """How one asset's price is aggregated and guarded.

    Aggregation: sources older than `max_age_ns` are dropped; the (weighted) median of the rest is
    the candidate price; a source counts as agreeing when |p − median| ≤ `mad_threshold` ·
    max(1.4826·MAD, `mad_floor_fraction` · median) (mad_threshold ≥ 1); the agreeing sources give
    the band, and at least `min_sources` must agree (else the asset is `stale`).

    Circuit breaker: a candidate more than `max_move_fraction` · max(1, elapsed / `breaker_interval_ns`)
    away from the last accepted price is held until `confirm_updates` consecutive updates move the
    same way, or at once when `confirm_sources` accepted sources agree on it.

    Smoothing: an exponential moving average of the accepted price with time constant
    `smoothing_ns` (the "stable price" collateral is also valued at, Drift/Mango style).

    Uncertainty add-on to the haircut: `spread_multiplier` · (band width / 2) / price, plus
    `staleness_per_second` · seconds beyond `staleness_grace_ns`, capped at `max_uncertainty_addon`.
    """

    max_age_ns: int = 10 * NS_PER_SECOND
    min_sources: int = 3
    use_weights: bool = False
    mad_threshold: float = 5.0
    mad_floor_fraction: float = 0.002
    max_move_fraction: float = 0.05
    breaker_interval_ns: int = 60 * NS_PER_SECOND
    confirm_updates: int = 3
    confirm_sources: int = 5
    smoothing_ns: int = 300 * NS_PER_SECOND
    spread_multiplier: float = 1.0
    staleness_per_second: float = 0.0001
    staleness_grace_ns: int = 10 * NS_PER_SECOND
    max_uncertainty_addon: float = 0.25

    def __post_init__(self) -> None:
        for name in ("max_age_ns", "breaker_interval_ns", "smoothing_ns"):
            value = getattr(self, name)
            if not isinstance(value, int) or value <= 0:
                raise InputError(name, f"must be a positive int of nanoseconds, got {value!r}")
        if not isinstance(self.staleness_grace_ns, int) or self.staleness_grace_ns < 0:
            raise InputError("staleness_grace_ns", f"must be an int >= 0, got {self.staleness_grace_ns!r}")
        for name in ("min_sources", "confirm_updates", "confirm_sources"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise InputError(name, f"must be an int >= 1, got {value!r}")
        check_range(self.mad_threshold, low=1.0, high=1e6, name="mad_threshold")
        check_range(self.mad_floor_fraction, low=0.0, high=1.0, name="mad_floor_fraction")
        check_range(self.max_move_fraction, low=0.0, high=1e6, name="max_move_fraction", include_high=False)
        if self.max_move_fraction <= 0.0:
            raise InputError("max_move_fraction", f"must be > 0, got {self.max_move_fraction!r}")
        check_range(self.spread_multiplier, low=0.0, high=1e6, name="spread_multiplier")
        check_range(self.staleness_per_second, low=0.0, high=1.0, name="staleness_per_second")
        check_range(self.max_uncertainty_addon, low=0.0, high=1.0, name="max_uncertainty_addon")


@dataclass(frozen=True, slots=True)
class ParamTable:
    """OracleParams of n assets as arrays, shape (n_assets,) each. Build with `ParamTable.stack`."""

    max_age_ns: IntArray
    min_sources: IntArray
    use_weights: npt.NDArray[np.bool_]
    mad_threshold: FloatArray
    mad_floor_fraction: FloatArray
    max_move_fraction: FloatArray
    breaker_interval_ns: IntArray
    confirm_updates: IntArray
    confirm_sources: IntArray
    smoothing_ns: IntArray
    spread_multiplier: FloatArray
    staleness_per_second: FloatArray
    staleness_grace_ns: IntArray
    max_uncertainty_addon: FloatArray

    @property
    def n_assets(self) -> int:
        return int(self.max_age_ns.shape[0])

    @staticmethod
    def stack(params: tuple[OracleParams, ...]) -> ParamTable:
        """Arrays over assets from one OracleParams per asset (in asset order)."""
        if not params:
            raise InputError("params", "need at least one asset")

        def column(name: str, dtype: type) -> npt.NDArray[Any]:
            array: npt.NDArray[Any] = np.array([getattr(p, name) for p in params], dtype=dtype)
            array.setflags(write=False)
            return array

        return ParamTable(
            max_age_ns=column("max_age_ns", np.int64),
            min_sources=column("min_sources", np.int64),
            use_weights=column("use_weights", np.bool_),
            mad_threshold=column("mad_threshold", np.float64),
            mad_floor_fraction=column("mad_floor_fraction", np.float64),
            max_move_fraction=column("max_move_fraction", np.float64),
            breaker_interval_ns=column("breaker_interval_ns", np.int64),
            confirm_updates=column("confirm_updates", np.int64),
            confirm_sources=column("confirm_sources", np.int64),
            smoothing_ns=column("smoothing_ns", np.int64),
            spread_multiplier=column("spread_multiplier", np.float64),
            staleness_per_second=column("staleness_per_second", np.float64),
            staleness_grace_ns=column("staleness_grace_ns", np.int64),
            max_uncertainty_addon=column("max_uncertainty_addon", np.float64),
        )

    @staticmethod
    def uniform(params: OracleParams, n_assets: int) -> ParamTable:
        """The same parameters for n_assets assets."""
        return ParamTable.stack((params,) * n_assets)

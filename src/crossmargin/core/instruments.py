"""Instruments: spot, perpetual, dated future (linear or inverse) and European options.

Conventions (per contract; quantity is a signed number of contracts, long > 0):
- linear (USD/stable-margined): `contract_size` is in units of the underlying (1 = one BTC);
  PnL_usd = q * contract_size * (mark - entry).
- inverse (coin-margined, Deribit/BitMEX): `contract_size` is the USD face of one contract
  (Deribit BTC-PERPETUAL: 10 USD); PnL_coin = q * contract_size * (1/entry - 1/mark), converted
  to USD at the underlying's index price.
- options: `contract_size` in units of the underlying; a linear option pays
  contract_size * max(±(S_T - K), 0) in USD, an inverse option pays the same amount in coin at
  S_T (Deribit BTC options), so its coin mark is the USD price over the forward.

Margin schedules cover both venue styles:
- Deribit linear growth: rate = base_rate + rate_per_unit * |size in underlying units|;
- notional tiers (Binance, Bybit, Hyperliquid): rate by the tier the position notional falls in,
  minus a deduction (Binance "maintenance amount") that keeps margin continuous at tier floors:
  deduction_t = deduction_{t-1} + floor_t * (rate_t - rate_{t-1}).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from enum import IntEnum
from itertools import pairwise

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_positive, check_range
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

NO_EXPIRY_NS = np.iinfo(np.int64).max


class InstrumentKind(IntEnum):
    SPOT = 0
    PERPETUAL = 1
    FUTURE = 2
    OPTION = 3


class Settlement(IntEnum):
    LINEAR = 0
    INVERSE = 1


class OptionType(IntEnum):
    """Sign of the payoff: call +1, put -1 (0 for non-options)."""

    NONE = 0
    CALL = 1
    PUT = -1


@dataclass(frozen=True, slots=True, kw_only=True)
class RateTier:
    """Rates that apply to the part of a position whose USD notional is above `above_notional_usd`."""

    above_notional_usd: float
    initial_rate: float
    maintenance_rate: float

    def __post_init__(self) -> None:
        check_range(self.above_notional_usd, low=0.0, high=np.inf, name="margin.tiers.above_notional_usd")
        check_range(self.initial_rate, low=0.0, high=1.0, name="margin.initial_rate")
        check_range(self.maintenance_rate, low=0.0, high=self.initial_rate, name="margin.maintenance_rate")


@dataclass(frozen=True, slots=True, kw_only=True)
class MarginSchedule:
    """Per-instrument risk-limit schedule (see module docstring)."""

    tiers: tuple[RateTier, ...] = (RateTier(above_notional_usd=0.0, initial_rate=0.0, maintenance_rate=0.0),)
    rate_per_unit: float = 0.0

    def __post_init__(self) -> None:
        if not self.tiers:
            raise InputError("margin.tiers", "must have at least one tier")
        if self.tiers[0].above_notional_usd != 0.0:
            raise InputError("margin.tiers", "first tier must start at above_notional_usd: 0")
        floors = [t.above_notional_usd for t in self.tiers]
        if any(b <= a for a, b in pairwise(floors)):
            raise InputError("margin.tiers", "tier floors must be strictly increasing")
        for name in ("initial_rate", "maintenance_rate"):
            rates = [getattr(t, name) for t in self.tiers]
            if any(b < a for a, b in pairwise(rates)):
                raise InputError(f"margin.tiers.{name}", "rates must not decrease with notional")
        check_range(self.rate_per_unit, low=0.0, high=1.0, name="margin.rate_per_unit")

    @classmethod
    def flat(
        cls, *, initial_rate: float, maintenance_rate: float, rate_per_unit: float = 0.0
    ) -> MarginSchedule:
        tier = RateTier(above_notional_usd=0.0, initial_rate=initial_rate, maintenance_rate=maintenance_rate)
        return cls(tiers=(tier,), rate_per_unit=rate_per_unit)


@dataclass(frozen=True, slots=True, kw_only=True)
class Instrument:
    """One tradable instrument. Market data (marks, vols) lives in MarketState, not here."""

    id: str
    kind: InstrumentKind
    underlying: str
    settlement: Settlement = Settlement.LINEAR
    contract_size: float = 1.0
    margin: MarginSchedule = field(default_factory=MarginSchedule)
    expiry_ns: int | None = None
    strike: float | None = None
    option_type: OptionType = OptionType.NONE

    def __post_init__(self) -> None:
        where = f"instruments[{self.id}]"
        if not self.id:
            raise InputError("instruments.id", "must not be empty")
        check_positive(self.contract_size, f"{where}.contract_size")
        if self.kind == InstrumentKind.SPOT and self.settlement != Settlement.LINEAR:
            raise InputError(f"{where}.settlement", "spot is always linear")
        if self.kind in (InstrumentKind.FUTURE, InstrumentKind.OPTION) and self.expiry_ns is None:
            raise InputError(f"{where}.expiry", f"a {self.kind.name.lower()} needs an expiry")
        if self.kind == InstrumentKind.OPTION:
            if self.strike is None:
                raise InputError(f"{where}.strike", "an option needs a strike")
            check_positive(self.strike, f"{where}.strike")
            if self.option_type == OptionType.NONE:
                raise InputError(f"{where}.option_type", "an option needs option_type call or put")
        elif self.option_type != OptionType.NONE or self.strike is not None:
            raise InputError(f"{where}.strike", "only options have a strike and an option_type")


# Plain ints: comparing an array with an enum member costs an enum attribute lookup per call, a
# measurable share of a ledger risk view (issue 16's profile of a transfer).
_OPTION = int(InstrumentKind.OPTION)
_INVERSE = int(Settlement.INVERSE)


@dataclass(frozen=True, slots=True)
class InstrumentTable:
    """I instruments as arrays (struct of arrays). Tier tables padded to T columns.

    Shapes: kind, settlement, option_sign (I,) int8; underlying_index (I,) int64 into
    `underlyings`; contract_size, strike (NaN if none), rate_per_unit (I,) float64;
    expiry_ns (I,) int64 (NO_EXPIRY_NS if none); tier_* (I, T) with +inf padded floors.
    """

    ids: tuple[str, ...]
    underlyings: tuple[str, ...]
    kind: npt.NDArray[np.int8]
    settlement: npt.NDArray[np.int8]
    option_sign: npt.NDArray[np.int8]
    underlying_index: IntArray
    contract_size: FloatArray
    strike: FloatArray
    expiry_ns: IntArray
    rate_per_unit: FloatArray
    tier_floor_usd: FloatArray
    tier_initial_rate: FloatArray
    tier_maintenance_rate: FloatArray
    tier_initial_deduction_usd: FloatArray
    tier_maintenance_deduction_usd: FloatArray
    index: dict[str, int] = field(compare=False)
    # Tables derived from this one and kept (a tier preset's schedules, `tier_presets`); a fresh
    # memo for every new table, dataclasses.replace included.
    memo: dict[str, InstrumentTable] = field(default_factory=dict, init=False, compare=False, repr=False)
    # Inverse delta-one instruments, whose PnL uses 1/entry (see pricing.entry_term): derived from
    # kind and settlement once per table (read-only), not per read (a ledger check reads it).
    reciprocal_entry: npt.NDArray[np.bool_] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        reciprocal = (self.settlement == _INVERSE) & (self.kind != _OPTION)
        reciprocal.flags.writeable = False
        object.__setattr__(self, "reciprocal_entry", reciprocal)

    @property
    def n_instruments(self) -> int:
        return len(self.ids)

    @property
    def is_option(self) -> npt.NDArray[np.bool_]:
        result: npt.NDArray[np.bool_] = self.kind == _OPTION
        return result

    @property
    def is_inverse(self) -> npt.NDArray[np.bool_]:
        result: npt.NDArray[np.bool_] = self.settlement == _INVERSE
        return result

    def position(self, instrument_id: str, *, field_name: str = "instrument") -> int:
        try:
            return self.index[instrument_id]
        except KeyError:
            raise InputError(field_name, f"unknown instrument {instrument_id!r}") from None

    @classmethod
    def from_instruments(cls, instruments: Sequence[Instrument]) -> InstrumentTable:
        ids = tuple(i.id for i in instruments)
        if len(set(ids)) != len(ids):
            seen: set[str] = set()
            dup = next(x for x in ids if x in seen or seen.add(x))  # type: ignore[func-returns-value]
            raise InputError("instruments.id", f"duplicate instrument {dup!r}")
        underlyings = tuple(dict.fromkeys(i.underlying for i in instruments))
        u_index = {u: n for n, u in enumerate(underlyings)}
        n = len(instruments)
        n_tiers = max((len(i.margin.tiers) for i in instruments), default=1)
        floor = np.full((n, n_tiers), np.inf)
        im_rate = np.zeros((n, n_tiers))
        mm_rate = np.zeros((n, n_tiers))
        for row, inst in enumerate(instruments):  # load time only
            tiers = inst.margin.tiers
            for col, tier in enumerate(tiers):
                floor[row, col] = tier.above_notional_usd
                im_rate[row, col] = tier.initial_rate
                mm_rate[row, col] = tier.maintenance_rate
            im_rate[row, len(tiers) :] = tiers[-1].initial_rate
            mm_rate[row, len(tiers) :] = tiers[-1].maintenance_rate
        return cls(
            ids=ids,
            underlyings=underlyings,
            kind=np.array([i.kind for i in instruments], dtype=np.int8),
            settlement=np.array([i.settlement for i in instruments], dtype=np.int8),
            option_sign=np.array([i.option_type for i in instruments], dtype=np.int8),
            underlying_index=np.array([u_index[i.underlying] for i in instruments], dtype=np.int64),
            contract_size=np.array([i.contract_size for i in instruments], dtype=np.float64),
            strike=np.array(
                [np.nan if i.strike is None else i.strike for i in instruments], dtype=np.float64
            ),
            expiry_ns=np.array(
                [NO_EXPIRY_NS if i.expiry_ns is None else i.expiry_ns for i in instruments],
                dtype=np.int64,
            ),
            rate_per_unit=np.array([i.margin.rate_per_unit for i in instruments], dtype=np.float64),
            tier_floor_usd=floor,
            tier_initial_rate=im_rate,
            tier_maintenance_rate=mm_rate,
            tier_initial_deduction_usd=continuity_deduction(floor, im_rate),
            tier_maintenance_deduction_usd=continuity_deduction(floor, mm_rate),
            index={x: n for n, x in enumerate(ids)},
        )


def continuity_deduction(floor: FloatArray, rate: FloatArray) -> FloatArray:
    """deduction_t = deduction_{t-1} + floor_t * (rate_t - rate_{t-1}); padded tiers add 0."""
    step = np.zeros_like(rate)
    finite_floor = np.where(np.isfinite(floor), floor, 0.0)
    step[:, 1:] = finite_floor[:, 1:] * (rate[:, 1:] - rate[:, :-1])
    deduction: FloatArray = np.cumsum(step, axis=1)
    return deduction


def tier_index(*, notional_usd: FloatArray, instrument_index: IntArray, table: InstrumentTable) -> IntArray:
    """The tier each position's |notional| (USD, (n,)) falls in: the number of floors above the
    first one it reaches. One (n,) gather per tier column (a handful), never an (n, T) gather."""
    tier = np.zeros(notional_usd.shape, dtype=np.int64)
    for col in range(1, table.tier_floor_usd.shape[1]):
        tier += notional_usd >= table.tier_floor_usd[:, col][instrument_index]
    return tier


def tiered_margin_usd(
    *,
    notional_usd: FloatArray,
    size_units: FloatArray,
    instrument_index: IntArray,
    table: InstrumentTable,
    maintenance: bool,
    tier: IntArray | None = None,
) -> FloatArray:
    """Tiered requirement per position, USD: notional * (rate_t + rate_per_unit * size) - deduction_t.

    notional_usd, size_units: (n,) absolute values; instrument_index: (n,); `tier`: `tier_index`
    of the same positions when the caller has it (IM and MM share it). Vectorised over positions.
    """
    if tier is None:
        tier = tier_index(notional_usd=notional_usd, instrument_index=instrument_index, table=table)
    rates = table.tier_maintenance_rate if maintenance else table.tier_initial_rate
    deductions = table.tier_maintenance_deduction_usd if maintenance else table.tier_initial_deduction_usd
    flat = instrument_index * rates.shape[1] + tier  # (instrument, tier) in the C-ordered tables
    rate = rates.ravel()[flat] + table.rate_per_unit[instrument_index] * size_units
    margin: FloatArray = notional_usd * rate - deductions.ravel()[flat]
    return margin

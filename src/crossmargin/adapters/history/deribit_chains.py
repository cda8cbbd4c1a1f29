"""Deribit option-chain snapshots (`options_deribit_{btc,eth}_<YYYYMMDD>.csv`) as core types.

One file is the whole listed Deribit option chain of one coin at one moment (format and
provenance: ../shared/data/README.md). A snapshot becomes

- an `InstrumentTable`: every listed inverse (coin-settled) option, contract size 1 coin, with its
  strike, expiry and type, followed by the coin's inverse perpetual (Deribit BTC-PERPETUAL: 10 USD
  face per contract; ETH-PERPETUAL: 1 USD) on Deribit's linear-growth futures schedule
        IM = 2 % + rate_per_unit·|size|,  MM = 1 % + rate_per_unit·|size|  (size in coin)
        rate_per_unit: BTC 0.005 % per BTC, ETH 0.0004 % per ETH
  (Deribit KB "Futures margin": +0.5 % per 100 BTC, +0.5 % per 1,250 ETH);
- a `MarketState` at `snapshot_time`: the coin's index price (the median of the per-row
  `index_price_usd`, which are ticker reads taken over a few minutes), each option's coin mark
  (`mark_price_coin` = undiscounted Black-76 USD price / F), `mark_iv` as its vol and
  `forward_price_usd` as F; rate 0 (Deribit marks are undiscounted); the perpetual marks at the
  index (no perpetual mark is in the file) with zero funding.

Rows whose `mark_price_coin` is 0 (Deribit rounds tiny marks to 0; 3–51 per file) are dropped and
counted: a zero mark is not a price the vol reproduces, and nothing here trades them.

Only the stdlib `csv` module is used. Every problem raises `BookFileError(path, field, problem)`
naming the column, the data row and the instrument, before anything is built.
"""

from __future__ import annotations

import csv
import math
import os
import re
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np
import numpy.typing as npt

from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    OptionType,
    Settlement,
)
from crossmargin.core.market import MarketState
from crossmargin.errors import BookFileError, InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

DATA_ENV = "CROSSMARGIN_DATA"
STABLE_COLLATERAL = "USDC"  # priced at 1 USD in a snapshot's market
FILE_PATTERN = re.compile(r"^options_deribit_(btc|eth)_(\d{8})\.csv$")

# Source of the snapshot files, from ../shared/data/README.md.
SOURCE_REPOSITORY = "znmahbub/SVCJ-Deribit-Inverse-Options-Pricer"
SOURCE_COMMIT = "516b0cb0f4d7c0f2874d04662961b01147583c5f"
SOURCE_PROVIDER = "Deribit public REST API v2 (get_book_summary_by_currency, ticker, get_instruments)"

REQUIRED_COLUMNS = (
    "snapshot_time",
    "instrument",
    "underlying",
    "expiry",
    "strike_usd",
    "option_type",
    "mark_price_coin",
    "mark_iv",
    "index_price_usd",
    "forward_price_usd",
    "delta",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class PerpetualSpec:
    """Deribit inverse perpetual: USD face per contract and the linear-growth margin schedule."""

    contract_size_usd: float
    initial_rate: float
    maintenance_rate: float
    rate_per_unit: float


# Deribit KB "Futures margin" (linear growth): BTC +0.5 % per 100 BTC, ETH +0.5 % per 1,250 ETH.
PERPETUALS = {
    "BTC": PerpetualSpec(
        contract_size_usd=10.0, initial_rate=0.02, maintenance_rate=0.01, rate_per_unit=0.00005
    ),
    "ETH": PerpetualSpec(
        contract_size_usd=1.0, initial_rate=0.02, maintenance_rate=0.01, rate_per_unit=0.000004
    ),
}


def repository_root() -> Path:
    """The checkout this module lives in (src/crossmargin/adapters/history/ -> four levels up)."""
    return Path(__file__).resolve().parents[4]


def data_dir() -> Path:
    """$CROSSMARGIN_DATA if set; else ../shared/data beside the repository checkout; else
    ../shared/data beside the working directory (an installed, non-editable package). The path is
    returned whether or not it exists: callers report its absence."""
    given = os.environ.get(DATA_ENV)
    if given:
        return Path(given).expanduser()
    candidates = [repository_root().parent / "shared" / "data", Path.cwd().parent / "shared" / "data"]
    return next((c for c in candidates if c.is_dir()), candidates[0])


def snapshot_path(underlying: str, date: str, data: Path | None = None) -> Path:
    """options_deribit_<coin>_<YYYYMMDD>.csv under `data` (default `data_dir()`)."""
    return (data if data is not None else data_dir()) / f"options_deribit_{underlying.lower()}_{date}.csv"


def list_snapshot_dates(data: Path | None = None) -> list[str]:
    """The YYYYMMDD dates that have a snapshot file for some coin, sorted."""
    folder = data if data is not None else data_dir()
    if not folder.is_dir():
        return []
    dates = {m.group(2) for p in folder.iterdir() if (m := FILE_PATTERN.match(p.name))}
    return sorted(dates)


@dataclass(frozen=True, slots=True)
class ChainSnapshot:
    """One coin's option chain at one snapshot, as core types plus the per-option file columns.

    instruments: the n_options options (file order, zero marks dropped), then the perpetual.
    Per-option arrays (n_options,): strike_usd, expiry_ns, option_sign (+1 call / -1 put),
    mark_price_coin, mark_iv, forward_price_usd, deribit_delta (the file's N(d1) forward delta;
    puts N(d1) - 1), index_price_usd (per-row ticker index).
    """

    path: str
    underlying: str
    snapshot_time: str
    valuation_ns: int
    index_price_usd: float
    instruments: InstrumentTable
    market: MarketState
    perpetual_id: str
    strike_usd: FloatArray
    expiry_ns: IntArray
    option_sign: npt.NDArray[np.int8]
    mark_price_coin: FloatArray
    mark_iv: FloatArray
    forward_price_usd: FloatArray
    deribit_delta: FloatArray
    row_index_price_usd: FloatArray
    n_rows: int
    dropped_zero_marks: int

    @property
    def n_options(self) -> int:
        return int(self.strike_usd.size)

    @property
    def option_ids(self) -> tuple[str, ...]:
        return self.instruments.ids[: self.n_options]

    @property
    def expiries_ns(self) -> IntArray:
        """Distinct listed expiries, ascending."""
        unique: IntArray = np.unique(self.expiry_ns)
        return unique

    @property
    def years_to_expiry(self) -> FloatArray:
        """ACT/365 year fraction per option, (n_options,)."""
        years: FloatArray = self.market.years_to_expiry(self.instruments)[: self.n_options]
        return years

    @property
    def index_spread(self) -> float:
        """(max - min) / median of the per-row index reads: how far the chain is from instantaneous."""
        rows = self.row_index_price_usd
        return float((rows.max() - rows.min()) / self.index_price_usd)


def to_ns(text: str) -> int:
    """ISO UTC time ('2025-12-30T17:31:15Z') -> integer ns since the epoch. Raises ValueError."""
    moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    if moment.tzinfo is None or moment.utcoffset() is None:
        raise ValueError(f"no UTC offset in {text!r}")
    seconds = int(moment.timestamp())
    return seconds * 1_000_000_000 + moment.microsecond * 1_000


def _number(path: str, column: str, value: str | None, row: int, instrument: str) -> float:
    where = f"(data row {row}, {instrument or 'no instrument'})"
    if value is None or not value.strip():
        raise BookFileError(path, column, f"is empty {where}")
    try:
        number = float(value)
    except ValueError:
        raise BookFileError(path, column, f"not a number: {value!r} {where}") from None
    if not math.isfinite(number):
        raise BookFileError(path, column, f"must be finite, got {value!r} {where}")
    return number


def load_chain(path: str | Path) -> ChainSnapshot:
    """Read one snapshot file. Raises BookFileError(path, field, problem) on any problem."""
    file = Path(path)
    where = str(file)
    try:
        handle = file.open(encoding="utf-8", newline="")
    except OSError as error:
        raise BookFileError(where, "file", f"cannot read: {error.strerror}") from None
    with handle:
        reader = csv.DictReader(handle)
        header = reader.fieldnames or []
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            raise BookFileError(where, missing[0], f"missing column (need {', '.join(REQUIRED_COLUMNS)})")
        records = list(reader)
    if not records:
        raise BookFileError(where, "file", "has a header but no data rows")

    first = records[0]
    snapshot_time = (first["snapshot_time"] or "").strip()
    underlying = (first["underlying"] or "").strip()
    try:
        valuation_ns = to_ns(snapshot_time)
    except ValueError:
        raise BookFileError(
            where, "snapshot_time", f"not an ISO UTC time: {snapshot_time!r} (data row 1)"
        ) from None
    if underlying not in PERPETUALS:
        raise BookFileError(
            where, "underlying", f"{underlying!r} has no perpetual spec (known: {', '.join(PERPETUALS)})"
        )

    ids: list[str] = []
    strike: list[float] = []
    expiry: list[int] = []
    sign: list[int] = []
    mark: list[float] = []
    vol: list[float] = []
    forward: list[float] = []
    delta: list[float] = []
    index: list[float] = []
    dropped = 0
    for n, record in enumerate(records, start=1):  # ~1,000 rows per file: load time only
        instrument = (record["instrument"] or "").strip()
        at = f"(data row {n}, {instrument or 'no instrument'})"
        if not instrument:
            raise BookFileError(where, "instrument", f"is empty (data row {n})")
        if (record["snapshot_time"] or "").strip() != snapshot_time:
            raise BookFileError(
                where,
                "snapshot_time",
                f"{record['snapshot_time']!r} differs from row 1's {snapshot_time!r} {at}",
            )
        if (record["underlying"] or "").strip() != underlying:
            raise BookFileError(
                where, "underlying", f"{record['underlying']!r} differs from row 1's {underlying!r} {at}"
            )
        kind = (record["option_type"] or "").strip()
        if kind not in ("call", "put"):
            raise BookFileError(where, "option_type", f"must be call or put, got {kind!r} {at}")
        try:
            expiry_ns = to_ns((record["expiry"] or "").strip())
        except ValueError:
            raise BookFileError(where, "expiry", f"not an ISO UTC time: {record['expiry']!r} {at}") from None
        if expiry_ns <= valuation_ns:
            raise BookFileError(where, "expiry", f"{record['expiry']} is not after snapshot_time {at}")
        values = {
            c: _number(where, c, record[c], n, instrument)
            for c in (
                "strike_usd",
                "mark_price_coin",
                "mark_iv",
                "index_price_usd",
                "forward_price_usd",
                "delta",
            )
        }
        for column in ("strike_usd", "mark_iv", "index_price_usd", "forward_price_usd"):
            if values[column] <= 0.0:
                raise BookFileError(where, column, f"must be > 0, got {values[column]!r} {at}")
        if values["mark_price_coin"] < 0.0:
            raise BookFileError(
                where, "mark_price_coin", f"must be >= 0, got {values['mark_price_coin']!r} {at}"
            )
        if values["mark_price_coin"] == 0.0:
            dropped += 1
            continue
        ids.append(instrument)
        strike.append(values["strike_usd"])
        expiry.append(expiry_ns)
        sign.append(1 if kind == "call" else -1)
        mark.append(values["mark_price_coin"])
        vol.append(values["mark_iv"])
        forward.append(values["forward_price_usd"])
        delta.append(values["delta"])
        index.append(values["index_price_usd"])
    if not ids:
        raise BookFileError(where, "mark_price_coin", "every row has a zero mark")

    spec = PERPETUALS[underlying]
    perpetual_id = f"{underlying}-PERPETUAL"
    try:
        options = [
            Instrument(
                id=ids[n],
                kind=InstrumentKind.OPTION,
                underlying=underlying,
                settlement=Settlement.INVERSE,
                contract_size=1.0,
                expiry_ns=expiry[n],
                strike=strike[n],
                option_type=OptionType.CALL if sign[n] > 0 else OptionType.PUT,
            )
            for n in range(len(ids))
        ]
        perpetual = Instrument(
            id=perpetual_id,
            kind=InstrumentKind.PERPETUAL,
            underlying=underlying,
            settlement=Settlement.INVERSE,
            contract_size=spec.contract_size_usd,
            margin=MarginSchedule.flat(
                initial_rate=spec.initial_rate,
                maintenance_rate=spec.maintenance_rate,
                rate_per_unit=spec.rate_per_unit,
            ),
        )
        table = InstrumentTable.from_instruments([*options, perpetual])
    except InputError as error:
        raise BookFileError(where, error.field, error.problem) from None

    row_index = np.asarray(index, dtype=np.float64)
    index_price = float(np.median(row_index))
    nan_perp = np.array([np.nan])
    market = MarketState(
        valuation_ns=valuation_ns,
        underlyings=table.underlyings,
        index_price_usd=np.array([index_price]),
        rate=0.0,
        mark_price=np.concatenate([np.asarray(mark, dtype=np.float64), nan_perp]),
        implied_vol=np.concatenate([np.asarray(vol, dtype=np.float64), nan_perp]),
        forward_price_usd=np.concatenate([np.asarray(forward, dtype=np.float64), nan_perp]),
        funding_rate_8h=np.zeros(table.n_instruments),
        # The collateral the strategy books post (adapters.history.strategies): USDC at par.
        asset_symbols=(STABLE_COLLATERAL,),
        asset_price_usd=np.ones(1),
    )
    return ChainSnapshot(
        path=where,
        underlying=underlying,
        snapshot_time=snapshot_time,
        valuation_ns=valuation_ns,
        index_price_usd=index_price,
        instruments=table,
        market=market,
        perpetual_id=perpetual_id,
        strike_usd=np.asarray(strike, dtype=np.float64),
        expiry_ns=np.asarray(expiry, dtype=np.int64),
        option_sign=np.asarray(sign, dtype=np.int8),
        mark_price_coin=np.asarray(mark, dtype=np.float64),
        mark_iv=np.asarray(vol, dtype=np.float64),
        forward_price_usd=np.asarray(forward, dtype=np.float64),
        deribit_delta=np.asarray(delta, dtype=np.float64),
        row_index_price_usd=row_index,
        n_rows=len(records),
        dropped_zero_marks=dropped,
    )

"""Ledger state and configuration: exact balances, integer positions, last prices, statuses.

`LedgerState` is immutable; `apply` (ledger.apply) returns a new one. Balances are integer minor
units per (account, asset); positions are integer contracts with a float64 entry price (a risk
input, like the marks). `risk_view` turns a state into the risk core's Book and MarketState, so
the ledger is margined by exactly the same code path as a book file.

The liquidation rules (AccountStatus, MarginCallParams, LiquidationParams, WaterfallParams,
`coverage`) live in `crossmargin.core.liquidation.params` (the ledger depends on liquidation,
never the reverse); they are re-exported here for the callers that import them from the ledger.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import json
import types
from collections.abc import Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import numpy.typing as npt

from crossmargin.core.assets import AssetTable
from crossmargin.core.book import Book
from crossmargin.core.checks import check_range
from crossmargin.core.instruments import InstrumentKind, InstrumentTable, Settlement
from crossmargin.core.ledger.money import to_float
from crossmargin.core.ledger.postings import SYSTEM_ACCOUNTS
from crossmargin.core.liquidation.params import WATERFALL_STAGES as WATERFALL_STAGES
from crossmargin.core.liquidation.params import AccountStatus as AccountStatus
from crossmargin.core.liquidation.params import LiquidationParams as LiquidationParams
from crossmargin.core.liquidation.params import MarginCallParams as MarginCallParams
from crossmargin.core.liquidation.params import WaterfallParams as WaterfallParams
from crossmargin.core.liquidation.params import coverage as coverage
from crossmargin.core.margin import CrossParams, MarginResult
from crossmargin.core.margin.few_accounts import HELD_COLUMNS, few_accounts_margin
from crossmargin.core.margin.requirements import priced_records
from crossmargin.core.margin.tier_presets import tier_preset_table
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, revalue
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerConfig:
    """Everything fixed for a ledger run. Linear instruments settle in `quote_asset`; inverse ones
    in the asset named like their underlying. `decimals[asset]` is the asset's minor unit."""

    instruments: InstrumentTable
    assets: AssetTable
    decimals: Mapping[str, int]
    quote_asset: str
    valuation_ns: int
    implied_vols: Mapping[str, float] = field(default_factory=dict)
    rate: float = 0.0
    taker_fee_rate: float = 0.0005
    maker_fee_rate: float = 0.0002
    margin: CrossParams = field(default_factory=CrossParams)
    margin_call: MarginCallParams = field(default_factory=MarginCallParams)
    liquidation: LiquidationParams = field(default_factory=LiquidationParams)
    waterfall: WaterfallParams = field(default_factory=WaterfallParams)
    # Priced markets of this configuration (priced_market): a memo, not a parameter; a replaced
    # configuration starts with its own.
    # (A lambda: PricedMemo is defined below, beside priced_market.)
    priced_memo: PricedMemo = field(
        default_factory=lambda: PricedMemo(), init=False, compare=False, repr=False
    )
    # Each instrument's settlement asset, derived once here (a trade reads it three times: fees
    # and PnL; the numpy lookup per read was ~7 % of a fill's CPU).
    settlement_assets: tuple[str, ...] = field(init=False, compare=False, repr=False)

    def __post_init__(self) -> None:
        for symbol in self.assets.symbols:
            if symbol not in self.decimals:
                raise InputError(f"decimals[{symbol}]", "every asset needs its minor-unit decimals")
        self.assets.position(self.quote_asset, field_name="quote_asset")
        table = self.instruments
        settlement = tuple(
            str(table.underlyings[int(table.underlying_index[i])])
            if table.settlement[i] == Settlement.INVERSE
            else self.quote_asset
            for i in range(table.n_instruments)
        )
        object.__setattr__(self, "settlement_assets", settlement)
        for i, inst in enumerate(self.instruments.ids):
            self.assets.position(self.settlement_asset(i), field_name=f"instruments[{inst}].settlement_asset")
        check_range(self.taker_fee_rate, low=0.0, high=0.1, name="taker_fee_rate")
        check_range(self.maker_fee_rate, low=0.0, high=0.1, name="maker_fee_rate")

    def settlement_asset(self, instrument: int) -> str:
        return self.settlement_assets[instrument]


@dataclass(frozen=True, slots=True)
class Position:
    quantity: int
    entry_price: float


@dataclass(frozen=True, slots=True, kw_only=True)
class LedgerState:
    """Immutable ledger state. `traders` in opening order; `balances[(account, asset)]` minor units
    (absent = 0); `positions[(account, instrument)]`; `prices` index prices by symbol; `marks`
    delta-one marks by instrument (absent = index); `status`/`call_deadline_ns` per trader;
    `expired` instruments; `sequence` counts postings."""

    traders: tuple[str, ...]
    balances: Mapping[tuple[str, str], int]
    positions: Mapping[tuple[str, str], Position]
    prices: Mapping[str, float]
    marks: Mapping[str, float]
    status: Mapping[str, AccountStatus]
    call_deadline_ns: Mapping[str, int]
    expired: frozenset[str]
    time_ns: int
    sequence: int

    @classmethod
    def open(cls, config: LedgerConfig, traders: tuple[str, ...], prices: Mapping[str, float]) -> LedgerState:
        """A fresh ledger: these traders, zero balances, the given index prices."""
        if len(set(traders)) != len(traders):
            raise InputError("traders", "duplicate trader id")
        for t in traders:
            if not t or t.startswith("@"):
                raise InputError("traders", f"trader id {t!r} must be non-empty and not start with '@'")
        needed = set(config.instruments.underlyings) | set(config.assets.symbols)
        missing = sorted(needed - set(prices))
        if missing:
            raise InputError("prices", f"no price for {missing[0]!r}")
        return cls(
            traders=traders,
            balances={},
            positions={},
            prices=dict(prices),
            marks={},
            status=dict.fromkeys(traders, AccountStatus.HEALTHY),
            call_deadline_ns={},
            expired=frozenset(),
            time_ns=config.valuation_ns,
            sequence=0,
        )

    def balance(self, account: str, asset: str) -> int:
        return self.balances.get((account, asset), 0)

    def is_account(self, account: str) -> bool:
        return account in self.status or account in SYSTEM_ACCOUNTS

    def digest(self) -> str:
        """SHA-256 of a canonical rendering (floats by repr): equal digests = same state bit for bit."""
        canonical = {
            "traders": list(self.traders),
            "balances": sorted([a, k, v] for (a, k), v in self.balances.items() if v != 0),
            "positions": sorted(
                [a, i, p.quantity, repr(p.entry_price)] for (a, i), p in self.positions.items()
            ),
            "prices": sorted([k, repr(v)] for k, v in self.prices.items()),
            "marks": sorted([k, repr(v)] for k, v in self.marks.items()),
            "status": sorted([k, int(v)] for k, v in self.status.items()),
            "deadline": sorted([k, v] for k, v in self.call_deadline_ns.items()),
            "expired": sorted(self.expired),
            "time_ns": self.time_ns,
            "sequence": self.sequence,
        }
        return hashlib.sha256(json.dumps(canonical).encode()).hexdigest()


@dataclass(frozen=True)
class RiskView:
    """The ledger seen by the risk core: the cross-margin result of the traders (rows in
    `traders` order), the priced market it was taken in (shared: read-only), and (built on first
    use: a margin check never needs it) the Book of those traders."""

    state: LedgerState
    config: LedgerConfig
    traders: tuple[str, ...]
    priced: PricedMarket
    result: MarginResult

    @property
    def market(self) -> MarketState:
        return self.priced.market

    @functools.cached_property
    def book(self) -> Book:
        return book_of(self.state, self.config, self.traders)


class Prices(Protocol):
    """What a market is built from: index prices by symbol, delta-one marks by instrument and the
    expired instruments (a `LedgerState`, or the venue's fold, which keeps the same three)."""

    @property
    def prices(self) -> Mapping[str, float]: ...

    @property
    def marks(self) -> Mapping[str, float]: ...

    @property
    def expired(self) -> AbstractSet[str]: ...


def market_of(state: Prices, config: LedgerConfig) -> MarketState:
    table = config.instruments
    live = {i for i in table.ids if i not in state.expired}
    return MarketState.build(
        table,
        valuation_ns=config.valuation_ns,
        index_prices={k: v for k, v in state.prices.items() if k in table.underlyings},
        rate=config.rate,
        mark_prices={i: m for i, m in state.marks.items() if i in live},
        # Kept after expiry: no position holds an expired option, but the instrument table still
        # prices it, and an option needs a vol (its mark is gone with the expiry).
        implied_vols=dict(config.implied_vols),
        asset_symbols=config.assets.symbols,
        asset_prices={s: state.prices[s] for s in config.assets.symbols},
    )


def book_of(state: LedgerState, config: LedgerConfig, traders: tuple[str, ...] | None = None) -> Book:
    """Balances to float asset amounts (risk math only), positions to the CSR book (validated:
    `Book.from_arrays`); the arrays `risk_view` margins, as a Book."""
    traders = state.traders if traders is None else traders
    held, balances = _gathered(state, config, traders)
    return Book.from_arrays(
        account_ids=traders,
        assets=config.assets,
        instruments=config.instruments,
        account_index=held[:, 0].astype(np.int64),
        instrument_index=held[:, 1].astype(np.int64),
        quantity=np.ascontiguousarray(held[:, 2]),
        entry_price=np.ascontiguousarray(held[:, 3]),
        balances=balances,
    )


@dataclass(frozen=True, slots=True)
class PricedMarket:
    """The market of a ledger state and every instrument revalued in it, with the cross kernel's
    instrument records: what `risk_view` needs that depends on prices, marks, expiries and the
    configuration only, never on whose book it is. Its arrays are read-only (it is shared)."""

    key: tuple[object, ...]
    # The read-only price and mark views it was priced from (`frozen_prices`), when it was: the
    # memo's identity fast path. None for plain mappings (found by the key's values only).
    views: tuple[Mapping[str, float], Mapping[str, float]] | None
    market: MarketState
    valuation: InstrumentValuation
    # The instrument table the ledger margins with: the configuration's, every linear perpetual on
    # its margin parameters' tier preset when one is set (the engine's `CrossMargin` does the same).
    instruments: InstrumentTable
    records: FloatArray  # requirements.priced_records: the fused cross kernel's input


class PricedMemo:
    """The newest few priced markets of one configuration (most recent first). A command's margin
    checks take several risk views of one account at unchanged prices: revaluing every instrument
    for each of them was most of a transfer's cost (issue 16); between two price moves every view
    now shares one revaluation. Held by the LedgerConfig it prices for (a memo, mutable on
    purpose, as core.book.BookMemo): no module state, and a new configuration starts empty."""

    KEPT = 4
    __slots__ = ("entries",)

    def __init__(self) -> None:
        self.entries: tuple[PricedMarket, ...] = ()

    def remember(self, entry: PricedMarket) -> None:
        self.entries = (entry, *self.entries[: self.KEPT - 1])  # one assignment: safe for readers


def frozen_prices(values: Mapping[str, float]) -> Mapping[str, float]:
    """A read-only view of a fresh copy of `values`: nobody holds the dict behind it, so it can
    never change, and `priced_market` may know it by identity."""
    return types.MappingProxyType(dict(values))


def priced_market(state: Prices, config: LedgerConfig) -> PricedMarket:
    """`market_of(state, config)`, `revalue` of every instrument in it and the option unit margins,
    computed once per (prices, marks, expiries) of a configuration and kept in its memo while they
    last. The key holds the values themselves: a miss only recomputes.

    Prices and marks given as `frozen_prices` views (the venue's fold and the sub-states it cuts)
    are found by identity first: building and comparing the key is O(the priced instruments) on
    every risk view (~11 µs at 200 marked instruments, ~117 µs at 2,000), the identity check O(1).
    A view cannot change, so the entry priced from it is still its market."""
    prices, marks = state.prices, state.marks
    frozen = type(prices) is types.MappingProxyType and type(marks) is types.MappingProxyType
    if frozen:
        for entry in config.priced_memo.entries:
            seen = entry.views
            if seen is not None and seen[0] is prices and seen[1] is marks and entry.key[2] == state.expired:
                return entry
    key = (tuple(prices.items()), tuple(marks.items()), frozenset(state.expired))
    views = (prices, marks) if frozen else None
    for entry in config.priced_memo.entries:
        if entry.key == key:
            if views is not None:  # the same market under new views: known by them from now on
                entry = dataclasses.replace(entry, views=views)
                config.priced_memo.remember(entry)
            return entry
    market = market_of(state, config)
    valuation = revalue(config.instruments, market)
    preset = config.margin.tier_preset
    table = config.instruments if preset is None else tier_preset_table(config.instruments, preset)
    records = priced_records(table, valuation, config.margin.option_margin)
    records.flags.writeable = False
    for part in (market, valuation):
        _freeze(part)
    entry = PricedMarket(
        key=key, views=views, market=market, valuation=valuation, instruments=table, records=records
    )
    config.priced_memo.remember(entry)
    return entry


def _freeze(value: object) -> None:
    """Make every numpy array field of a dataclass read-only (a shared value must not move)."""
    for name in getattr(value, "__dataclass_fields__", ()):
        array = getattr(value, name)
        if isinstance(array, np.ndarray):
            array.flags.writeable = False


def risk_view(state: LedgerState, config: LedgerConfig, traders: tuple[str, ...] | None = None) -> RiskView:
    """Cross margin of the traders in one call of the fused few-accounts kernel
    (`margin.few_accounts`: the haircut units, entry terms, cross pass and pooled totals of
    `CrossMargin.evaluate`, in its order), on rows gathered straight from the state's dicts: a
    ledger account's margin has the bits the engine gives the same account, and a margin check
    (one or two accounts per withdrawal, transfer or fill) costs one kernel dispatch (issue 16;
    docs/ARCHITECTURE.md)."""
    traders = state.traders if traders is None else traders
    priced = priced_market(state, config)
    held, balances = _gathered(state, config, traders)
    result = margin_of_rows(priced, config, held, balances)
    return RiskView(state=state, config=config, traders=traders, priced=priced, result=result)


def margin_of_rows(
    priced: PricedMarket, config: LedgerConfig, held: FloatArray, balances: FloatArray
) -> MarginResult:
    """Cross margin in `priced` of the accounts whose positions are `held` ((row, instrument
    index, contracts, entry price) rows sorted by row then instrument) and whose balances are
    `balances` ((A, K) float asset amounts): one few-accounts kernel call (`risk_view`'s)."""
    return few_accounts_margin(
        held,
        balances,
        assets=config.assets,
        reciprocal_entry=config.instruments.reciprocal_entry,
        records=priced.records,
        n_tiers=priced.instruments.tier_floor_usd.shape[1],
        asset_price_usd=priced.market.asset_prices(config.assets),
    )


def _gathered(
    state: LedgerState, config: LedgerConfig, traders: tuple[str, ...]
) -> tuple[FloatArray, FloatArray]:
    """The traders' positions as (row, instrument index, contracts, entry price) rows sorted by
    row then instrument (a Book's canonical order; both indices exact in float64, < 2**53) and
    their balances (A, K) as float asset amounts (risk maths only)."""
    holdings: dict[str, dict[str, Position]] = {t: {} for t in traders}
    for (a, i), p in state.positions.items():
        if a in holdings:
            holdings[a][i] = p
    # Each trader's few balances looked up (a check's state also carries every system account's).
    balances = np.array([balance_amounts(state.balances, config, t) for t in traders], dtype=np.float64)
    table = held_rows(config, [holdings[t] for t in traders])
    return table, balances.reshape(len(traders), config.assets.n_assets)


def held_rows(config: LedgerConfig, holdings: Sequence[Mapping[str, Position]]) -> FloatArray:
    """(P, 4) rows (account row, instrument index, contracts, entry price) of the accounts whose
    positions are `holdings[row]` (instrument -> position), sorted by row then instrument (a
    Book's canonical order; both indices exact in float64, < 2**53): what `margin_of_rows` takes."""
    index = config.instruments.index
    held = sorted(
        (row, index[i], float(p.quantity), p.entry_price)
        for row, mine in enumerate(holdings)
        for i, p in mine.items()
    )
    return np.array(held, dtype=np.float64).reshape(len(held), HELD_COLUMNS)


def balance_amounts(
    balances: Mapping[tuple[str, str], int], config: LedgerConfig, trader: str
) -> list[float]:
    """The trader's balances as float asset amounts in asset order (risk maths only; the
    ledger's balances are exact integer units)."""
    out = []
    for symbol in config.assets.symbols:
        units = balances.get((trader, symbol))
        out.append(to_float(units, config.decimals[symbol]) if units else 0.0)
    return out


def is_delta_one(config: LedgerConfig, instrument: int) -> bool:
    return int(config.instruments.kind[instrument]) in (InstrumentKind.PERPETUAL, InstrumentKind.FUTURE)

"""Reusable book builders for tests: a readable one for hand-written cases (`book_from_rows`) and
hypothesis strategies for random books (`random_books`).

Random books mix every kind the core supports: linear and inverse perpetuals and dated futures,
linear and inverse European options (calls and puts), collateral assets with progressive haircut
tiers, borrowing at a liability weight, and 1-5 accounts. Balances are dyadic rationals
(integers / 1024), so moving an amount between accounts keeps the asset totals exact in float64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
from hypothesis import strategies as st

from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    OptionType,
    RateTier,
    Settlement,
)
from crossmargin.core.market import MarketState

VALUATION_NS = 1_704_067_200 * 10**9  # 2024-01-01T00:00:00Z
NS_PER_DAY = 86_400 * 10**9
BALANCE_QUANTUM = 1.0 / 1024.0  # dyadic: sums and differences of balances are exact in float64

ScheduleStyle = Literal["flat", "growth", "tiers", "any"]


# --------------------------------------------------------------------------- hand-written books


def book_from_rows(
    *,
    assets: Sequence[Asset],
    instruments: Sequence[Instrument] | InstrumentTable,
    balances: Mapping[str, Mapping[str, float]],
    positions: Sequence[tuple[str, str, float, float]] = (),
) -> Book:
    """A book from readable rows.

    balances: {account_id: {asset_symbol: quantity}}; every account must appear here (use {} for
    an account with no collateral). positions: (account_id, instrument_id, quantity, entry_price).
    """
    asset_table = AssetTable.from_assets(list(assets))
    table = (
        instruments
        if isinstance(instruments, InstrumentTable)
        else InstrumentTable.from_instruments(list(instruments))
    )
    account_ids = tuple(balances)
    matrix = np.zeros((len(account_ids), asset_table.n_assets))
    for row, account in enumerate(account_ids):
        for symbol, quantity in balances[account].items():
            matrix[row, asset_table.position(symbol)] = quantity
    row_of = {a: n for n, a in enumerate(account_ids)}
    return Book.from_arrays(
        account_ids=account_ids,
        assets=asset_table,
        instruments=table,
        account_index=[row_of[p[0]] for p in positions],
        instrument_index=[table.position(p[1]) for p in positions],
        quantity=[p[2] for p in positions],
        entry_price=[p[3] for p in positions],
        balances=matrix,
    )


STABLE_PRICES = {"USDC": 1.0}  # the stablecoin of `usd_asset` and `random_books`, at par


def usd_asset(symbol: str = "USDC") -> Asset:
    """A stablecoin with no haircut (price it at 1 USD in the market: `STABLE_PRICES`)."""
    return Asset(symbol=symbol)


# --------------------------------------------------------------------------- hypothesis strategies


@dataclass(frozen=True, slots=True)
class RandomBook:
    """A random book and a market state aligned to its instruments."""

    book: Book
    market: MarketState
    assets: tuple[Asset, ...]
    instruments: tuple[Instrument, ...]


def _unit(draw: st.DrawFn, low: float, high: float) -> float:
    return draw(st.floats(min_value=low, max_value=high, allow_nan=False, allow_infinity=False))


@st.composite
def haircut_tiers(draw: st.DrawFn, *, tiered: bool = True, scale: float = 1.0) -> tuple[HaircutTier, ...]:
    """Progressive haircut tiers: floors strictly increasing from 0, haircuts non-decreasing, < 1.

    scale: a typical balance in asset units, so tier floors fall where balances do.
    """
    first = _unit(draw, 0.0, 0.3)
    if not tiered:
        return (HaircutTier(above=0.0, haircut=first),)
    n_extra = draw(st.integers(min_value=0, max_value=3))
    tiers = [HaircutTier(above=0.0, haircut=first)]
    floor, haircut = 0.0, first
    for _ in range(n_extra):
        floor += scale * _unit(draw, 0.05, 1.0)
        haircut = min(haircut + _unit(draw, 0.0, 0.3), 0.95)
        tiers.append(HaircutTier(above=floor, haircut=haircut))
    return tuple(tiers)


@st.composite
def margin_schedules(
    draw: st.DrawFn, style: ScheduleStyle = "any", *, notional_scale: float = 1e6
) -> MarginSchedule:
    """flat: one tier, rate_per_unit 0; growth: one tier, rate_per_unit > 0 (Deribit);
    tiers: 2-4 notional tiers, non-decreasing rates (Binance/Hyperliquid); any: one of these."""
    if style == "any":
        style = draw(st.sampled_from(["flat", "growth", "tiers"]))
    initial = _unit(draw, 0.005, 0.2)
    maintenance = initial * _unit(draw, 0.2, 1.0)
    if style == "flat":
        return MarginSchedule.flat(initial_rate=initial, maintenance_rate=maintenance)
    if style == "growth":
        return MarginSchedule.flat(
            initial_rate=initial, maintenance_rate=maintenance, rate_per_unit=_unit(draw, 1e-6, 1e-3)
        )
    tiers = [RateTier(above_notional_usd=0.0, initial_rate=initial, maintenance_rate=maintenance)]
    floor = 0.0
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        floor += notional_scale * _unit(draw, 0.05, 1.0)
        initial = min(initial + _unit(draw, 0.0, 0.1), 1.0)
        maintenance = min(maintenance + _unit(draw, 0.0, 0.1), initial)
        tiers.append(RateTier(above_notional_usd=floor, initial_rate=initial, maintenance_rate=maintenance))
    return MarginSchedule(tiers=tuple(tiers))


_INDEX_RANGE_USD = {"BTC": (20_000.0, 120_000.0), "ETH": (1_000.0, 5_000.0)}
_KINDS = [
    (InstrumentKind.PERPETUAL, Settlement.LINEAR),
    (InstrumentKind.PERPETUAL, Settlement.INVERSE),
    (InstrumentKind.FUTURE, Settlement.LINEAR),
    (InstrumentKind.FUTURE, Settlement.INVERSE),
    (InstrumentKind.OPTION, Settlement.LINEAR),
    (InstrumentKind.OPTION, Settlement.INVERSE),
]


@st.composite
def random_books(
    draw: st.DrawFn,
    *,
    schedule: ScheduleStyle = "any",
    tiered_haircuts: bool = True,
    allow_borrow: bool = True,
    with_positions: bool = True,
    max_accounts: int = 5,
    max_instruments: int = 6,
) -> RandomBook:
    """A random book (see module docstring) with a market state at VALUATION_NS."""
    index_usd = {u: _unit(draw, *bounds) for u, bounds in _INDEX_RANGE_USD.items()}

    # Collateral: a stablecoin plus coins priced at their index.
    assets = [
        Asset(
            symbol="USDC", haircut_tiers=draw(haircut_tiers(tiered=tiered_haircuts, scale=1e6))
        )
    ]
    for coin in draw(st.lists(st.sampled_from(["BTC", "ETH"]), unique=True, max_size=2)):
        price = index_usd[coin]
        assets.append(
            Asset(
                symbol=coin,
                haircut_tiers=draw(haircut_tiers(tiered=tiered_haircuts, scale=1e6 / price)),
                liability_weight=_unit(draw, 1.0, 1.5),
                borrow_rate_apr=_unit(draw, 0.0, 0.3),
            )
        )

    # Instruments.
    instruments: list[Instrument] = []
    implied_vols: dict[str, float] = {}
    marks: dict[str, float] = {}
    n_instruments = draw(st.integers(min_value=2 if with_positions else 0, max_value=max_instruments))
    for n in range(n_instruments):
        kind, settlement = draw(st.sampled_from(_KINDS))
        underlying = draw(st.sampled_from(sorted(index_usd)))
        spot = index_usd[underlying]
        ident = f"{underlying}-{kind.name}-{settlement.name}-{n}"
        expiry = (
            None
            if kind == InstrumentKind.PERPETUAL
            else VALUATION_NS + draw(st.integers(1, 365)) * NS_PER_DAY
        )
        if kind == InstrumentKind.OPTION:
            option_type = draw(st.sampled_from([OptionType.CALL, OptionType.PUT]))
            instruments.append(
                Instrument(
                    id=ident,
                    kind=kind,
                    underlying=underlying,
                    settlement=settlement,
                    contract_size=draw(st.sampled_from([0.1, 1.0])),
                    expiry_ns=expiry,
                    strike=round(spot * _unit(draw, 0.6, 1.6)),
                    option_type=option_type,
                    margin=draw(margin_schedules(schedule)) if draw(st.booleans()) else MarginSchedule(),
                )
            )
            implied_vols[ident] = _unit(draw, 0.2, 1.5)
        else:
            contract_size = 10.0 if settlement == Settlement.INVERSE else draw(st.sampled_from([0.01, 1.0]))
            instruments.append(
                Instrument(
                    id=ident,
                    kind=kind,
                    underlying=underlying,
                    settlement=settlement,
                    contract_size=contract_size,
                    expiry_ns=expiry,
                    margin=draw(margin_schedules(schedule)),
                )
            )
            if draw(st.booleans()):
                marks[ident] = spot * _unit(draw, 0.95, 1.05)
    table = InstrumentTable.from_instruments(instruments)
    market = MarketState.build(
        table,
        valuation_ns=VALUATION_NS,
        index_prices=index_usd,
        rate=_unit(draw, -0.02, 0.08),
        mark_prices=marks,
        implied_vols=implied_vols,
        asset_symbols=[a.symbol for a in assets],
        asset_prices=STABLE_PRICES,
    )

    # Accounts: dyadic balances, optional borrowing, random positions.
    asset_table = AssetTable.from_assets(assets)
    n_accounts = draw(st.integers(min_value=1, max_value=max_accounts))
    typical = 1e6 / market.asset_prices(asset_table)  # ~1 M USD of each asset
    balances = np.zeros((n_accounts, len(assets)))
    for a in range(n_accounts):
        for k in range(len(assets)):
            top = int(typical[k] / BALANCE_QUANTUM)
            low = -top // 4 if allow_borrow and draw(st.booleans()) else 0
            balances[a, k] = draw(st.integers(min_value=low, max_value=top)) * BALANCE_QUANTUM

    rows: list[int] = []
    cols: list[int] = []
    quantity: list[float] = []
    entry: list[float] = []
    if with_positions and instruments:
        for a in range(n_accounts):
            held = draw(
                st.lists(
                    st.integers(0, len(instruments) - 1),
                    unique=True,
                    max_size=len(instruments),
                    min_size=1 if a == 0 else 0,
                )
            )
            for i in held:
                inst = instruments[i]
                spot = index_usd[inst.underlying]
                # Up to ~2 M USD notional per position.
                if inst.settlement == Settlement.INVERSE and inst.kind != InstrumentKind.OPTION:
                    max_contracts = 2e6 / inst.contract_size
                else:
                    max_contracts = 2e6 / (inst.contract_size * spot)
                size = max_contracts * _unit(draw, 0.001, 1.0)
                rows.append(a)
                cols.append(i)
                quantity.append(size if draw(st.booleans()) else -size)
                if inst.kind == InstrumentKind.OPTION:
                    # Premium in settlement units (coin for inverse); zero premiums are allowed.
                    premium = 0.05 if inst.settlement == Settlement.INVERSE else 0.05 * spot
                    entry.append(premium * draw(st.sampled_from([0.0, 0.5, 1.0, 1.5])))
                else:
                    entry.append(spot * _unit(draw, 0.7, 1.3))
    book = Book.from_arrays(
        account_ids=[f"acct-{a}" for a in range(n_accounts)],
        assets=asset_table,
        instruments=table,
        account_index=np.array(rows, dtype=np.int64),
        instrument_index=np.array(cols, dtype=np.int64),
        quantity=np.array(quantity, dtype=np.float64),
        entry_price=np.array(entry, dtype=np.float64),
        balances=balances,
    )
    return RandomBook(book=book, market=market, assets=tuple(assets), instruments=tuple(instruments))


STABLECOINS = frozenset({"USD", "USDC", "USDT"})


def at_par(market: MarketState, book: Book) -> MarketState:
    """`market` priced for the book's collateral: coins at their index price, the stablecoins of
    STABLECOINS at 1 USD; any other asset must be priced by the test itself."""
    return market.for_assets(
        book.assets, {s: 1.0 for s in book.assets.symbols if s in STABLECOINS and s not in market.underlyings}
    )

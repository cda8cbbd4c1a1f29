"""Option strategies built on a real Deribit chain snapshot, and a book holding them.

Selection rules (all on listed instruments, nothing interpolated):

- expiry: the listed expiry whose time to expiry is nearest `NEAR_DAYS` (30) days; the calendar's
  far leg, the listed expiry nearest `FAR_DAYS` (90) days among the later ones;
- 25-delta call / put: the listed strike of that expiry whose Deribit `delta` column (Black-76
  forward delta N(d1), puts N(d1) - 1) is nearest +0.25 / -0.25;
- ATM: the listed strike nearest that expiry's forward (for the calendar, nearest the near
  expiry's forward among strikes listed with a call in both expiries, so both legs share it).

Strategies, each `CONTRACTS[coin]` contracts per option leg (10 BTC, 100 ETH; one contract = 1 coin):

- short strangle: short the 25-delta call and the 25-delta put;
- calendar spread: short the near ATM call, long the far ATM call at the same strike;
- hedged risk reversal: long the 25-delta call, short the 25-delta put, and the inverse perpetual
  sized to cancel the options' USD delta: q_perp = -round(D·S/cs), where D = Σ q·N(d1)·(contract
  size) is the option delta in coin (the USD value of an inverse option is cs·B(F)·S/F with F/S
  fixed, so ∂V/∂S = cs·N(d1)), S the index (the perpetual's mark and entry) and cs its USD face;
  an inverse perpetual entered at E has USD delta q·cs/E coin.

Every leg enters at today's mark (options: coin mark; perpetual: index), so unrealised P&L is 0
and the account's equity is its collateral plus the options' mark value.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from crossmargin.adapters.history.deribit_chains import STABLE_COLLATERAL, ChainSnapshot
from crossmargin.core.assets import Asset, AssetTable
from crossmargin.core.book import Book
from crossmargin.core.market import NS_PER_YEAR
from crossmargin.core.pricing import revalue
from crossmargin.errors import InputError

NEAR_DAYS = 30.0
FAR_DAYS = 90.0
TARGET_DELTA = 0.25
CONTRACTS = {"BTC": 10.0, "ETH": 100.0}
COLLATERAL_ASSET = STABLE_COLLATERAL  # the chain market prices it
COLLATERAL_USDC = 1_000_000.0
NS_PER_DAY = NS_PER_YEAR / 365.0


@dataclass(frozen=True, slots=True, kw_only=True)
class Leg:
    """One position: signed quantity in contracts, entry price in the instrument's settlement
    units (options: coin mark; inverse perpetual: USD price)."""

    instrument_id: str
    quantity: float
    entry_price: float
    role: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Strategy:
    name: str
    title: str
    underlying: str
    legs: tuple[Leg, ...]
    option_delta_coin: float
    hedge_delta_coin: float

    @property
    def net_delta_coin(self) -> float:
        """Option plus hedge USD delta, in coin (USD P&L per 1 USD index move)."""
        return self.option_delta_coin + self.hedge_delta_coin


def days_to_expiry(chain: ChainSnapshot, expiry_ns: int) -> float:
    return float((expiry_ns - chain.valuation_ns) / NS_PER_DAY)


def nearest_expiry(chain: ChainSnapshot, days: float, *, after_ns: int | None = None) -> int:
    """The listed expiry nearest `days` days from the snapshot (later than `after_ns` if given)."""
    listed = chain.expiries_ns
    if after_ns is not None:
        listed = listed[listed > after_ns]
    if listed.size == 0:
        raise InputError("expiry", f"{chain.path}: no listed expiry to choose from")
    remaining = (listed - chain.valuation_ns).astype(np.float64) / NS_PER_DAY
    return int(listed[int(np.argmin(np.abs(remaining - days)))])


def option_by_delta(chain: ChainSnapshot, expiry_ns: int, *, sign: int, target: float) -> int:
    """Row of the listed option (sign +1 call, -1 put) of this expiry whose Deribit delta is
    nearest `target`; ties go to the first in file order (the lower strike)."""
    rows = np.flatnonzero((chain.expiry_ns == expiry_ns) & (chain.option_sign == sign))
    if rows.size == 0:
        raise InputError("option_type", f"{chain.path}: no {'call' if sign > 0 else 'put'} for this expiry")
    return int(rows[int(np.argmin(np.abs(chain.deribit_delta[rows] - target)))])


def call_at_strike(chain: ChainSnapshot, expiry_ns: int, strike: float) -> int:
    rows = np.flatnonzero(
        (chain.expiry_ns == expiry_ns) & (chain.option_sign > 0) & (chain.strike_usd == strike)
    )
    if rows.size == 0:
        raise InputError("strike_usd", f"{chain.path}: no call at strike {strike:g}")
    return int(rows[0])


def _forward(chain: ChainSnapshot, expiry_ns: int) -> float:
    return float(np.median(chain.forward_price_usd[chain.expiry_ns == expiry_ns]))


def _option_leg(chain: ChainSnapshot, row: int, quantity: float, role: str) -> Leg:
    return Leg(
        instrument_id=chain.option_ids[row],
        quantity=quantity,
        entry_price=float(chain.mark_price_coin[row]),
        role=role,
    )


def _option_delta_coin(chain: ChainSnapshot, legs: Sequence[Leg]) -> float:
    """Σ q·(USD delta per contract) over option legs, in coin: the engine's Black-76 delta."""
    valuation = revalue(chain.instruments, chain.market)
    table = chain.instruments
    return float(sum(leg.quantity * valuation.delta_usd[table.index[leg.instrument_id]] for leg in legs))


def short_strangle(chain: ChainSnapshot, contracts: float | None = None) -> Strategy:
    size = contracts if contracts is not None else CONTRACTS[chain.underlying]
    expiry = nearest_expiry(chain, NEAR_DAYS)
    call = option_by_delta(chain, expiry, sign=1, target=TARGET_DELTA)
    put = option_by_delta(chain, expiry, sign=-1, target=-TARGET_DELTA)
    legs = (
        _option_leg(chain, call, -size, "short 25-delta call"),
        _option_leg(chain, put, -size, "short 25-delta put"),
    )
    return Strategy(
        name="short-strangle",
        title="Short strangle",
        underlying=chain.underlying,
        legs=legs,
        option_delta_coin=_option_delta_coin(chain, legs),
        hedge_delta_coin=0.0,
    )


def calendar_spread(chain: ChainSnapshot, contracts: float | None = None) -> Strategy:
    size = contracts if contracts is not None else CONTRACTS[chain.underlying]
    near = nearest_expiry(chain, NEAR_DAYS)
    far = nearest_expiry(chain, FAR_DAYS, after_ns=near)
    calls = chain.option_sign > 0
    near_strikes = chain.strike_usd[(chain.expiry_ns == near) & calls]
    far_strikes = chain.strike_usd[(chain.expiry_ns == far) & calls]
    common = np.intersect1d(near_strikes, far_strikes)
    if common.size == 0:
        raise InputError("strike_usd", f"{chain.path}: no strike listed with a call in both expiries")
    strike = float(common[int(np.argmin(np.abs(common - _forward(chain, near))))])
    legs = (
        _option_leg(chain, call_at_strike(chain, near, strike), -size, "short near ATM call"),
        _option_leg(chain, call_at_strike(chain, far, strike), size, "long far ATM call"),
    )
    return Strategy(
        name="calendar-spread",
        title="Calendar spread",
        underlying=chain.underlying,
        legs=legs,
        option_delta_coin=_option_delta_coin(chain, legs),
        hedge_delta_coin=0.0,
    )


def hedged_risk_reversal(chain: ChainSnapshot, contracts: float | None = None) -> Strategy:
    size = contracts if contracts is not None else CONTRACTS[chain.underlying]
    expiry = nearest_expiry(chain, NEAR_DAYS)
    call = option_by_delta(chain, expiry, sign=1, target=TARGET_DELTA)
    put = option_by_delta(chain, expiry, sign=-1, target=-TARGET_DELTA)
    options = (
        _option_leg(chain, call, size, "long 25-delta call"),
        _option_leg(chain, put, -size, "short 25-delta put"),
    )
    option_delta = _option_delta_coin(chain, options)
    table = chain.instruments
    face = float(table.contract_size[table.index[chain.perpetual_id]])
    price = chain.index_price_usd  # the perpetual's mark and entry
    perp_contracts = -float(round(option_delta * price / face))
    legs = (
        *options,
        Leg(
            instrument_id=chain.perpetual_id,
            quantity=perp_contracts,
            entry_price=price,
            role=f"perpetual delta hedge ({face:g} USD per contract)",
        ),
    )
    return Strategy(
        name="risk-reversal-hedged",
        title="Risk reversal + perp hedge",
        underlying=chain.underlying,
        legs=legs,
        option_delta_coin=option_delta,
        hedge_delta_coin=perp_contracts * face / price,
    )


STRATEGIES: dict[str, Callable[[ChainSnapshot], Strategy]] = {
    "short-strangle": short_strangle,
    "calendar-spread": calendar_spread,
    "risk-reversal-hedged": hedged_risk_reversal,
}


def strategy_book(
    chain: ChainSnapshot, strategies: Sequence[Strategy], *, collateral_usdc: float = COLLATERAL_USDC
) -> Book:
    """One account per strategy (account id = strategy name), each holding `collateral_usdc` USDC
    (priced at 1 USD, no haircut) and the strategy's legs at their entry prices."""
    assets = AssetTable.from_assets([Asset(symbol=COLLATERAL_ASSET)])  # priced in chain.market
    table = chain.instruments
    rows = [n for n, s in enumerate(strategies) for _ in s.legs]
    legs = [leg for s in strategies for leg in s.legs]
    return Book.from_arrays(
        account_ids=[s.name for s in strategies],
        assets=assets,
        instruments=table,
        account_index=np.asarray(rows, dtype=np.int64),
        instrument_index=np.asarray([table.position(leg.instrument_id) for leg in legs], dtype=np.int64),
        quantity=np.asarray([leg.quantity for leg in legs], dtype=np.float64),
        entry_price=np.asarray([leg.entry_price for leg in legs], dtype=np.float64),
        balances=np.full((len(strategies), 1), collateral_usdc),
    )

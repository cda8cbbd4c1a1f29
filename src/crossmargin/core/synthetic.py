"""Synthetic venue books with a realistic shape, for scale and what-if work. Seeded: the same
(spec, seed) gives the same book bit for bit.

Shape (each a parameter of `SynthSpec`):
- account equity heavy-tailed: Pareto with tail index `equity_tail_index` (≈ 1.1–1.5 for wealth
  and exchange-account sizes; Gabaix 2009, "Power Laws in Economics and Finance", Annu. Rev.
  Econ. 1) above `equity_floor_usd`, plus `whales` accounts `whale_multiple` times the largest;
- leverage (gross notional / equity) lognormal, median `leverage_median`, clipped to
  [`leverage_min`, `leverage_max`];
- 1..`max_positions` perpetuals per account, long with probability `long_share` (crowds lean
  long), notional split across them;
- a share `option_seller_share` of accounts also sells out-of-the-money BTC options (puts and
  calls, 10–30 % from spot) worth `option_notional_share` of their equity's notional;
- collateral: a mix of USDC, USDT, BTC and ETH per account (Dirichlet weights).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.assets import Asset, AssetTable, HaircutTier
from crossmargin.core.book import Book
from crossmargin.core.checks import check_range
from crossmargin.core.instruments import (
    Instrument,
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    OptionType,
    RateTier,
)
from crossmargin.core.market import MarketState
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

# 2025-12-30T17:31:15Z, the bundled example's snapshot; BTC and ETH index from it (real), SOL 125
# illustrative (examples/desk.yaml states the same).
VALUATION_NS = 1_767_115_875 * 10**9
INDEX_USD = {"BTC": 88_528.93, "ETH": 2_978.73, "SOL": 125.0}
OPTION_EXPIRY_NS = VALUATION_NS + 30 * 86_400 * 10**9
OPTION_VOL = 0.45
COLLATERAL = ("USDC", "USDT", "BTC", "ETH")
COLLATERAL_WEIGHTS = (4.0, 2.0, 1.0, 1.0)  # Dirichlet concentration: stablecoins dominate


@dataclass(frozen=True, slots=True, kw_only=True)
class SynthSpec:
    n_accounts: int
    seed: int = 0
    equity_floor_usd: float = 500.0
    equity_tail_index: float = 1.3
    whales: int = 5
    whale_multiple: float = 3.0
    leverage_median: float = 3.0
    leverage_sigma: float = 0.9
    leverage_min: float = 0.1
    leverage_max: float = 25.0
    max_positions: int = 3
    long_share: float = 0.6
    option_seller_share: float = 0.05
    option_notional_share: float = 1.0

    def __post_init__(self) -> None:
        if self.n_accounts < 1:
            raise InputError("accounts", f"must be >= 1, got {self.n_accounts!r}")
        check_range(self.equity_tail_index, low=0.5, high=10.0, name="equity_tail_index")
        check_range(self.long_share, low=0.0, high=1.0, name="long_share")
        check_range(self.option_seller_share, low=0.0, high=1.0, name="option_seller_share")
        if not 1 <= self.max_positions <= 3:
            raise InputError("max_positions", "must lie in 1..3 (one perpetual per underlying)")
        if self.whales < 0:
            raise InputError("whales", "must be >= 0")


def synth_instruments() -> InstrumentTable:
    """Linear perpetuals on BTC, ETH, SOL (Binance-like tiers) and 30-day BTC options 10–30 % OTM."""
    tiers = (
        RateTier(above_notional_usd=0.0, initial_rate=0.02, maintenance_rate=0.01),
        RateTier(above_notional_usd=1_000_000.0, initial_rate=0.05, maintenance_rate=0.025),
        RateTier(above_notional_usd=20_000_000.0, initial_rate=0.10, maintenance_rate=0.05),
        RateTier(above_notional_usd=100_000_000.0, initial_rate=0.25, maintenance_rate=0.125),
    )
    out = [
        Instrument(
            id=f"{u}-PERP", kind=InstrumentKind.PERPETUAL, underlying=u, margin=MarginSchedule(tiers=tiers)
        )
        for u in INDEX_USD
    ]
    for moneyness in (0.7, 0.8, 0.9):
        strike = round(INDEX_USD["BTC"] * moneyness, -3)
        out.append(
            Instrument(
                id=f"BTC-30D-{strike:.0f}-P",
                kind=InstrumentKind.OPTION,
                underlying="BTC",
                expiry_ns=OPTION_EXPIRY_NS,
                strike=strike,
                option_type=OptionType.PUT,
            )
        )
    for moneyness in (1.1, 1.2, 1.3):
        strike = round(INDEX_USD["BTC"] * moneyness, -3)
        out.append(
            Instrument(
                id=f"BTC-30D-{strike:.0f}-C",
                kind=InstrumentKind.OPTION,
                underlying="BTC",
                expiry_ns=OPTION_EXPIRY_NS,
                strike=strike,
                option_type=OptionType.CALL,
            )
        )
    return InstrumentTable.from_instruments(out)


def synth_assets() -> AssetTable:
    """Stablecoins at par with no haircut up to 5M; BTC 5 %, ETH 10 % (illustrative schedules)."""
    stable = (HaircutTier(above=0.0, haircut=0.0), HaircutTier(above=5e6, haircut=0.02))
    return AssetTable.from_assets(
        [
            Asset(symbol="USDC", haircut_tiers=stable),
            Asset(symbol="USDT", haircut_tiers=stable),
            Asset(symbol="BTC", haircut_tiers=(HaircutTier(above=0.0, haircut=0.05),)),
            Asset(symbol="ETH", haircut_tiers=(HaircutTier(above=0.0, haircut=0.10),)),
        ]
    )


def synth_market(instruments: InstrumentTable) -> MarketState:
    """The synthetic market: index prices above, stablecoins at par (the collateral of
    `synth_assets`), options at a flat 45 % implied vol."""
    vols = {instruments.ids[i]: OPTION_VOL for i in np.flatnonzero(instruments.is_option).tolist()}
    return MarketState.build(
        instruments,
        valuation_ns=VALUATION_NS,
        index_prices=INDEX_USD,
        implied_vols=vols,
        asset_symbols=synth_assets().symbols,
        asset_prices={"USDC": 1.0, "USDT": 1.0},
    )


@dataclass(frozen=True, slots=True)
class SynthArrays:
    """A synthetic book as coordinate arrays (what Parquet stores): per account equity-shaped
    balances (A, K) over `synth_assets`; per position account (P,), instrument (P,), signed
    contracts (P,), entry price (P,) USD."""

    balances: FloatArray
    account_index: IntArray
    instrument_index: IntArray
    quantity: FloatArray
    entry_price: FloatArray


def synth_arrays(spec: SynthSpec, *, first_account: int = 0, n_accounts: int | None = None) -> SynthArrays:
    """The accounts [first_account, first_account + n_accounts) of the book of `spec`: each block
    of 65,536 accounts draws from its own stream (seed, block), so any range is the same as in
    the whole book and a large book is generated block by block."""
    count = spec.n_accounts - first_account if n_accounts is None else n_accounts
    if first_account < 0 or count < 0 or first_account + count > spec.n_accounts:
        raise InputError("accounts", "range outside the book")
    block = 65_536
    parts = []
    b0, b1 = (
        first_account // block,
        (first_account + count - 1) // block if count else first_account // block - 1,
    )
    for b in range(b0, b1 + 1):
        lo, hi = b * block, min((b + 1) * block, spec.n_accounts)
        arrays = _block(spec, lo, hi)
        keep_lo, keep_hi = max(lo, first_account), min(hi, first_account + count)
        parts.append(_slice(arrays, keep_lo - lo, keep_hi - lo, offset=keep_lo - first_account))
    if not parts:
        none = np.zeros(0, dtype=np.int64)
        return SynthArrays(np.zeros((0, len(COLLATERAL))), none, none.copy(), np.zeros(0), np.zeros(0))
    return SynthArrays(
        balances=np.vstack([p.balances for p in parts]),
        account_index=np.concatenate([p.account_index for p in parts]),
        instrument_index=np.concatenate([p.instrument_index for p in parts]),
        quantity=np.concatenate([p.quantity for p in parts]),
        entry_price=np.concatenate([p.entry_price for p in parts]),
    )


def _slice(a: SynthArrays, lo: int, hi: int, *, offset: int) -> SynthArrays:
    keep = (a.account_index >= lo) & (a.account_index < hi)
    return SynthArrays(
        balances=a.balances[lo:hi],
        account_index=a.account_index[keep] - lo + offset,
        instrument_index=a.instrument_index[keep],
        quantity=a.quantity[keep],
        entry_price=a.entry_price[keep],
    )


def _block(spec: SynthSpec, lo: int, hi: int) -> SynthArrays:
    rng = np.random.default_rng([spec.seed, lo])
    n = hi - lo
    equity = spec.equity_floor_usd * (1.0 + rng.pareto(spec.equity_tail_index, n))
    equity = np.minimum(equity, 5e8)  # the Pareto tail is unbounded; a venue's largest account is not
    whale = np.arange(lo, hi) < spec.whales
    equity = np.where(whale, 5e8 * spec.whale_multiple / 10.0, equity)
    weights = rng.dirichlet(COLLATERAL_WEIGHTS, n)
    price = np.array([1.0, 1.0, INDEX_USD["BTC"], INDEX_USD["ETH"]])
    balances = equity[:, None] * weights / price[None, :]
    leverage = np.clip(
        np.exp(np.log(spec.leverage_median) + spec.leverage_sigma * rng.standard_normal(n)),
        spec.leverage_min,
        spec.leverage_max,
    )
    leverage = np.where(whale, 2.0, leverage)
    n_perps = rng.integers(1, spec.max_positions + 1, n)
    # Each account picks n_perps distinct underlyings: a random permutation's first n_perps.
    perm = np.argsort(rng.random((n, 3)), axis=1)
    take = np.arange(3)[None, :] < n_perps[:, None]
    rows = np.repeat(np.arange(n), 3).reshape(n, 3)[take]
    under = perm[take]
    share = rng.dirichlet(np.ones(3), n)[np.arange(n)[:, None], perm][take]
    share = share / np.bincount(rows, weights=share, minlength=n)[rows]
    side = np.where(rng.random(rows.size) < spec.long_share, 1.0, -1.0)
    spot = np.array([INDEX_USD[u] for u in INDEX_USD])[under]
    notional = leverage[rows] * equity[rows] * share
    quantity = side * notional / spot
    entry = spot * np.exp(0.01 * rng.standard_normal(rows.size))
    # Option sellers: one short OTM BTC option each (puts twice as often: crowds sell downside).
    seller = np.flatnonzero(rng.random(n) < spec.option_seller_share)
    option = 3 + np.where(
        rng.random(seller.size) < 2.0 / 3.0, rng.integers(0, 3, seller.size), rng.integers(3, 6, seller.size)
    )
    option_qty = -spec.option_notional_share * equity[seller] / INDEX_USD["BTC"]
    account = np.concatenate([rows, seller])
    instrument = np.concatenate([under, option])
    qty = np.concatenate([quantity, option_qty])
    price_in = np.concatenate([entry, np.zeros(seller.size)])  # premium paid/received is in the balances
    order = np.lexsort((instrument, account))
    return SynthArrays(
        balances=balances,
        account_index=account[order].astype(np.int64),
        instrument_index=instrument[order].astype(np.int64),
        quantity=qty[order],
        entry_price=price_in[order],
    )


def synth_book(spec: SynthSpec, arrays: SynthArrays | None = None, *, first_account: int = 0) -> Book:
    """A Book of the spec's accounts (or of `arrays`, a range starting at `first_account`)."""
    arrays = arrays if arrays is not None else synth_arrays(spec)
    n = arrays.balances.shape[0]
    return Book.from_arrays(
        account_ids=[f"acct-{first_account + j:08d}" for j in range(n)],
        assets=synth_assets(),
        instruments=synth_instruments(),
        account_index=arrays.account_index,
        instrument_index=arrays.instrument_index,
        quantity=arrays.quantity,
        entry_price=arrays.entry_price,
        balances=arrays.balances,
    )

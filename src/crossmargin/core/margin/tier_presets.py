"""Venue risk-limit tier tables for linear perpetuals, as margin-model parameters.

A tier preset is a parameter of the cross and isolated models (`CrossParams.tier_preset`), not a
property of the book: the book keeps the schedules its file gives, and a model with a preset
margins its linear perpetuals on the venue's table instead. Switching preset is switching model
(`RiskEngine.use_model`); the book and everything derived from it stay. The preset's instrument
table is derived once per instrument table and preset and kept (`tier_preset_table`).

Sources: Binance USDⓈ-M leverage brackets and Hyperliquid's margin tiers, cited at each table.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from crossmargin.core.book import Book
from crossmargin.core.instruments import (
    InstrumentKind,
    InstrumentTable,
    MarginSchedule,
    RateTier,
    continuity_deduction,
)
from crossmargin.errors import InputError


def _leverage_tiers(rows: list[tuple[float, float, float]]) -> MarginSchedule:
    """(floor_usd, max_leverage, maintenance_rate) rows -> schedule with IM = 1/max_leverage."""
    return MarginSchedule(
        tiers=tuple(
            RateTier(above_notional_usd=floor, initial_rate=1.0 / lev, maintenance_rate=mmr)
            for floor, lev, mmr in rows
        )
    )


# Binance USDⓈ-M BTCUSDT brackets (GET /fapi/v1/leverageBracket, mid-2024 snapshot kept in
# freqtrade/exchange/binance_leverage_tiers.json @ 01d10aeb): floor, max leverage, MMR.
BINANCE_BTCUSDT = [
    (0.0, 125.0, 0.004),
    (50_000.0, 100.0, 0.005),
    (600_000.0, 75.0, 0.0065),
    (3_000_000.0, 50.0, 0.01),
    (12_000_000.0, 25.0, 0.02),
    (70_000_000.0, 20.0, 0.025),
    (100_000_000.0, 10.0, 0.05),
    (230_000_000.0, 5.0, 0.10),
    (480_000_000.0, 4.0, 0.125),
    (600_000_000.0, 3.0, 0.15),
    (800_000_000.0, 2.0, 0.25),
    (1_200_000_000.0, 1.0, 0.50),
]
# Hyperliquid mainnet margin tables (hyperliquid.gitbook.io/hyperliquid-docs/trading/margin-tiers):
# "BTC 0-150M 40, >150M 20", "ETH 0-100M 25, >100M 15", "SOL 0-70M 20, >70M 10"; MMR = half the
# initial margin rate at max leverage; default for other assets "0-3M 10, >3M 5".
HYPERLIQUID = {
    "BTC": [(0.0, 40.0), (150_000_000.0, 20.0)],
    "ETH": [(0.0, 25.0), (100_000_000.0, 15.0)],
    "SOL": [(0.0, 20.0), (70_000_000.0, 10.0)],
}
HYPERLIQUID_DEFAULT = [(0.0, 10.0), (3_000_000.0, 5.0)]


def binance_schedule(underlying: str) -> MarginSchedule:
    """Binance's BTCUSDT bracket table (used for every underlying: the published table we hold)."""
    return _leverage_tiers(BINANCE_BTCUSDT)


def hyperliquid_schedule(underlying: str) -> MarginSchedule:
    rows = HYPERLIQUID.get(underlying, HYPERLIQUID_DEFAULT)
    return _leverage_tiers([(floor, lev, 0.5 / lev) for floor, lev in rows])


TIER_PRESETS: dict[str, Callable[[str], MarginSchedule]] = {
    "binance": binance_schedule,
    "hyperliquid": hyperliquid_schedule,
}


def check_tier_preset(name: str) -> str:
    """`name` if it is a tier preset, else an InputError naming the choices."""
    if name not in TIER_PRESETS:
        raise InputError("preset", f"unknown tier preset {name!r}; choose one of {', '.join(TIER_PRESETS)}")
    return name


def tier_preset_table(table: InstrumentTable, name: str) -> InstrumentTable:
    """`table` with every linear perpetual on the preset's tiers (others unchanged), derived once
    per table and preset (kept in the table's memo: a tick or a sub-book reuses it)."""
    key = f"tier_preset:{check_tier_preset(name)}"
    cached = table.memo.get(key)
    if cached is None:
        cached = _apply_preset(table, TIER_PRESETS[name])
        table.memo[key] = cached
    return cached


def _apply_preset(table: InstrumentTable, schedule_for: Callable[[str], MarginSchedule]) -> InstrumentTable:
    targets = np.flatnonzero((table.kind == InstrumentKind.PERPETUAL) & ~table.is_inverse)
    schedules = {int(i): schedule_for(table.underlyings[table.underlying_index[i]]) for i in targets}
    n_tiers = max([table.tier_floor_usd.shape[1], *(len(s.tiers) for s in schedules.values())])
    pad = n_tiers - table.tier_floor_usd.shape[1]
    floor = np.pad(table.tier_floor_usd, ((0, 0), (0, pad)), constant_values=np.inf)
    im = np.pad(table.tier_initial_rate, ((0, 0), (0, pad)), mode="edge")
    mm = np.pad(table.tier_maintenance_rate, ((0, 0), (0, pad)), mode="edge")
    rate_per_unit = table.rate_per_unit.copy()
    for i, schedule in schedules.items():  # instruments, not positions
        floor[i] = np.inf
        for col, tier in enumerate(schedule.tiers):
            floor[i, col] = tier.above_notional_usd
            im[i, col] = tier.initial_rate
            mm[i, col] = tier.maintenance_rate
        im[i, len(schedule.tiers) :] = schedule.tiers[-1].initial_rate
        mm[i, len(schedule.tiers) :] = schedule.tiers[-1].maintenance_rate
        rate_per_unit[i] = schedule.rate_per_unit
    scheduled: InstrumentTable = dataclasses.replace(
        table,
        tier_floor_usd=floor,
        tier_initial_rate=im,
        tier_maintenance_rate=mm,
        tier_initial_deduction_usd=continuity_deduction(floor, im),
        tier_maintenance_deduction_usd=continuity_deduction(floor, mm),
        rate_per_unit=rate_per_unit,
    )
    return scheduled


def with_tier_preset(book: Book, name: str) -> Book:
    """The same book with every linear perpetual on a venue's tier table (others unchanged); the
    book's memo (position runs, risk buckets, haircut units) carries over."""
    return book.with_instrument_schedules(tier_preset_table(book.instruments, name))


def scheduled(book: Book, tier_preset: str | None) -> Book:
    """The book a model with `tier_preset` margins (the book itself when None)."""
    return book if tier_preset is None else with_tier_preset(book, tier_preset)

"""Venue methodologies as parameter sets, each with its source.

Portfolio-margin presets (`PORTFOLIO_PRESETS`); the risk-limit tier tables for perpetuals
(`TIER_PRESETS`, a parameter of the cross and isolated models) live in `tier_presets` and are
re-exported here. Numbers marked "ours" are
this project's choices where a venue publishes none; everything else is cited.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from crossmargin.core.margin.portfolio import AddOns, JointSpec, PortfolioParams
from crossmargin.core.margin.tier_presets import (
    TIER_PRESETS,
    binance_schedule,
    hyperliquid_schedule,
    tier_preset_table,
    with_tier_preset,
)
from crossmargin.core.scenarios import GridSpec, VolShock
from crossmargin.errors import InputError

__all__ = [
    "EXTENDED_MOVES",
    "PORTFOLIO_PRESETS",
    "TIER_PRESETS",
    "PortfolioOverrides",
    "binance_schedule",
    "crossmargin_multi",
    "deribit_pm",
    "hyperliquid_schedule",
    "paradex_pm",
    "portfolio_preset",
    "span_like",
    "tier_preset_table",
    "with_tier_preset",
]

EXTENDED_MOVES = (-0.66, -0.33, 0.5, 1.0, 2.0, 3.0, 4.0, 5.0)


def deribit_pm() -> PortfolioParams:
    """Deribit portfolio margin (2024 model), per currency, summed.

    Source: Deribit Knowledge Base "Portfolio Margin" (support.deribit.com/hc/en-us/articles/
    25944756247837) — "+/-16% … broken down into 9 evenly spaced buckets … Volatility Range Up,
    Same, and Down … Extended Table … -66%, -33%, +50%, +100%, +200%, +300%, +400%, +500%. Only on
    Volatility Range Up. Only a fraction of simulated P&L. Application of a dampener" — and the
    parameters of the published `private/pme/simulate` example (docs.deribit.com, 2024-06-17):
    price_range 0.16, volatility_range_up 0.5 / down 0.25, short/long-term vega power 0.3 / 0.13,
    min_volatility_for_shock_up 0.5, extended_dampener 100,000 USD-equivalent (BTC),
    annualised_move_risk 0.075, min_annualised_move 0.01, mm_factor 0.8.
    Assumed (not published): relative vol shocks (as Derive and Paradex publish), the shocked-up
    vol floored at 0.5, the extended fraction = range/|move| (Paradex v1's published table, the
    same structure), ETH and other currencies on BTC's parameters. X:PM-style: USD numeraire,
    one pool; tests/golden reproduces the published S:PM example with a BTC numeraire.
    """
    vol = VolShock(up=0.5, down=0.25, short_power=0.3, long_power=0.13, min_vol_up=0.5)
    grid = GridSpec(
        price_range=0.16,
        price_steps=9,
        vol=vol,
        extreme_moves=EXTENDED_MOVES,
        extreme_weights=tuple(min(1.0, 0.16 / abs(m)) for m in EXTENDED_MOVES),
        extreme_vol="up",
        extreme_dampener_usd=100_000.0,
        extreme_options_only=True,
    )
    return PortfolioParams(
        name="deribit-pm",
        default_grid=grid,
        addons=AddOns(annualised_move_risk=0.075, min_annualised_move=0.01),
        maintenance_fraction=0.8,
        source="Deribit KB 'Portfolio Margin' + private/pme/simulate example (2024-06-17)",
    )


PARADEX_RANGES = {"BTC": 0.14, "ETH": 0.16, "SOL": 0.24}
PARADEX_MIN_DELTA = {"BTC": (0.002, 0.001), "ETH": (0.002, 0.001), "SOL": (0.003, 0.0015)}


def _paradex_grid(price_range: float, up: float, down: float) -> GridSpec:
    return GridSpec(
        price_range=price_range,
        price_steps=9,
        vol=VolShock(up=up, down=down, short_power=0.3, long_power=0.13, min_days=1.0),
        vol_same=False,
        edge_vol="up",
        extreme_moves=EXTENDED_MOVES,
        # Published tail weights fit 0.5·R / (|m|·max(1, |m|)) to the table's rounding.
        extreme_weights=tuple(0.5 * price_range / (abs(m) * max(1.0, abs(m))) for m in EXTENDED_MOVES),
        extreme_vol="up",
    )


def paradex_pm() -> PortfolioParams:
    """Paradex portfolio margin: 24 weighted scenarios per asset (16 standard: ±R, ±¾R, ±½R, ±¼R, 0
    with vol up and down, the ends vol up only; 8 tail moves with vol up at published weights),
    IMR = max(SCAN, MinDelta) + funding provision + fee provision, MMR = 50 % of the risk part.

    Source: docs.paradex.trade/risk/portfolio-margin (tradeparadex/paradex-docs,
    docs/pages/risk-system/portfolio-margin.mdx @ f0ba8b68): BTC R 14 %, ETH 16 %, SOL 24 %;
    vol shock +40 % / -22 % (SOL +64 % / -35.2 %) x (30/max(1, DTE))^(0.30 | 0.13); min-delta
    0.2 % / 0.1 % (SOL 0.3 % / 0.15 %); "Funding Provision is margin reserved to cover any expected
    funding PnL over the next 8 hours". Assumed: the fee provision (formula not published) as a
    2 bps closing fee on notional (ours); other assets on SOL's parameters.
    """
    grids = {
        "BTC": _paradex_grid(0.14, 0.40, 0.22),
        "ETH": _paradex_grid(0.16, 0.40, 0.22),
        "SOL": _paradex_grid(0.24, 0.64, 0.352),
    }
    return PortfolioParams(
        name="paradex-pm",
        grids=grids,
        default_grid=_paradex_grid(0.24, 0.64, 0.352),
        addons=AddOns(
            min_delta_unhedged=0.003,
            min_delta_hedged=0.0015,
            min_delta_by_underlying=PARADEX_MIN_DELTA,
            funding_periods=1.0,
            fee_rate=0.0002,
        ),
        maintenance_fraction=0.5,
        source="docs.paradex.trade/risk/portfolio-margin",
    )


SPAN_SCAN_RANGES = {"BTC": 0.16, "ETH": 0.20, "SOL": 0.28}


def _span_grid(scan_range: float) -> GridSpec:
    return GridSpec(
        price_range=scan_range,
        price_steps=7,  # 0, ±1/3, ±2/3, ±3/3 of the scan range
        vol=VolShock(up=0.25, down=0.25),
        vol_same=False,
        extreme_moves=(2.0 * scan_range, -2.0 * scan_range),
        extreme_cover=0.35,
        extreme_vol="same",
    )


def span_like() -> PortfolioParams:
    """A SPAN-like 16-scenario preset: price scan range in thirds (0, ±1/3, ±2/3, ±1) each with vol
    up and down, plus ±2 x scan range (vol unchanged) covered at 35 %; per underlying, summed; a
    short-option minimum; maintenance = initial / 1.1 (CME: initial is 110 % of maintenance).

    Source: CME "SPAN methodology overview" (cmegroup.com/clearing/risk-management/
    span-overview.html) and the standard 16-scenario risk array (scenarios 15/16: "extreme"
    moves, 35 % of the loss). Scan ranges (BTC 16 %, ETH 20 %, SOL 28 %), the ±25 % relative vol
    scan and the 1 % short-option minimum are ours (CME sets them per product).
    """
    return PortfolioParams(
        name="span",
        grids={u: _span_grid(r) for u, r in SPAN_SCAN_RANGES.items()},
        default_grid=_span_grid(0.28),
        addons=AddOns(short_option_rate=0.01),
        maintenance_fraction=1.0 / 1.1,
        source="CME SPAN 16-scenario risk array",
    )


# Daily-return correlations of BTC, ETH and SOL, estimated from ../shared/data/prices_daily_yahoo.csv
# over 2021-01-01 .. 2025-02-11 (tests/reference/test_presets_data.py re-estimates them).
CRYPTO_CORRELATION = {("BTC", "ETH"): 0.82, ("BTC", "SOL"): 0.59, ("ETH", "SOL"): 0.64}
CRYPTO_RANGES = {"BTC": 0.16, "ETH": 0.20, "SOL": 0.28}


def crossmargin_multi(
    *,
    ranges: Mapping[str, float] = CRYPTO_RANGES,
    correlation: Mapping[tuple[str, str], float] = CRYPTO_CORRELATION,
    default_range: float = 0.30,
    default_correlation: float = 0.6,
) -> PortfolioParams:
    """This project's correlation-aware multi-asset preset: one group of joint moves on the
    correlation ellipsoid of every underlying (BTC, ETH, SOL, ...) with vol up/same/down on every
    option, joint crashes and rallies at a fraction (options repriced, delta-one capped), collateral
    moving with its own asset in each scenario, Deribit's roll shock, a short-option contingency
    and a stablecoin-depeg charge on the collateral backing the requirement.

    Nothing open today nets BTC options against ETH perps against a haircut multi-asset pool:
    Deribit PM and SPAN sum per currency (no diversification), and per-underlying grids never
    move BTC collateral against an ETH short. Here BTC and ETH parting (ρ = 0.82 ⇒ the parting
    move is √((1-ρ)/2) = 30 % of each range) is charged, and so is the common move.
    """
    names = sorted(set(ranges))
    return PortfolioParams(
        name="crossmargin-multi",
        combine="joint",
        joint=JointSpec(
            factors=tuple(names),
            ranges=tuple(ranges[n] for n in names),
            correlation=tuple(
                tuple(
                    1.0 if a == b else correlation.get((a, b), correlation.get((b, a), default_correlation))
                    for b in names
                )
                for a in names
            ),
            vol=VolShock(up=0.5, down=0.25, short_power=0.3, long_power=0.13),
            # Joint crashes and rallies reprice options; delta-one and collateral keep the BTC
            # range (Deribit's extended-table treatment), counted at 0.16/|move|.
            extreme_moves=(-0.5, -0.33, 0.5, 1.0),
            extreme_weights=tuple(0.16 / m for m in (0.5, 0.33, 0.5, 1.0)),
            extreme_delta_one_cap=0.16,
            default_range=default_range,
            default_correlation=default_correlation,
        ),
        addons=AddOns(
            annualised_move_risk=0.075,
            min_annualised_move=0.01,
            short_option_rate=0.005,
            stablecoins=("USDT", "USDC"),
            depeg_move=0.05,
        ),
        maintenance_fraction=0.8,
        source="crossmargin (ours); correlations from ../shared/data/prices_daily_yahoo.csv",
    )


PORTFOLIO_PRESETS: dict[str, Callable[[], PortfolioParams]] = {
    "deribit-pm": deribit_pm,
    "paradex-pm": paradex_pm,
    "span": span_like,
    "crossmargin-multi": crossmargin_multi,
}


def portfolio_preset(name: str) -> PortfolioParams:
    try:
        return PORTFOLIO_PRESETS[name]()
    except KeyError:
        choices = ", ".join(PORTFOLIO_PRESETS)
        raise InputError("preset", f"unknown portfolio preset {name!r}; choose one of {choices}") from None


@dataclass(frozen=True, slots=True, kw_only=True)
class PortfolioOverrides:
    """What a book's `model.portfolio` block sets explicitly, on top of whichever preset runs.

    None (or an empty `addons`) leaves the preset's own value. `addons` holds (AddOns field,
    value) pairs. A `--preset` flag replaces only the preset; these still apply on top of it.
    """

    maintenance_fraction: float | None = None
    numeraire: str | None = None
    addons: tuple[tuple[str, Any], ...] = ()

    def apply(self, params: PortfolioParams) -> PortfolioParams:
        """`params` with these overrides; an override the preset rejects is an InputError
        naming the field (e.g. "addons.short_option_rate")."""
        changes: dict[str, Any] = {}
        if self.maintenance_fraction is not None:
            changes["maintenance_fraction"] = self.maintenance_fraction
        if self.numeraire is not None:
            changes["numeraire"] = self.numeraire
        if self.addons:
            changes["addons"] = dataclasses.replace(params.addons, **dict(self.addons))
        return dataclasses.replace(params, **changes) if changes else params

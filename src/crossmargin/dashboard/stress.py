"""Stress runs the stress page starts, on the venue-wide stress engine (`engine.stress`,
docs/stress.md) exactly as `crossmargin stress` and `crossmargin cascade` drive it, over the
venue's own risk engine (its book, market and margin model) and its insurance fund:

- the venue: `prepare_venue(book, market)` (a USD cash asset, options at their Black-76 vols);
- the shock: hypothetical, every underlying of the venue moved by `move` (`hypothetical_shock`;
  a collateral asset of an underlying's name moves with it, stablecoins do not), or historical,
  a named window's joint close-to-close move from the shared data (`window_shock` of
  `adapters.history.stress_windows.historical_moves`: vols by BTC DVOL, funding paid by
  perpetuals; a factor without data moves with BTC, named on the page);
- **shock** / **historical**: the screen (`screen`: every account's P&L in the scenario, one
  `revalue_scenarios` pass, no liquidation) and the forward stress (`forward_stress`: the shock's
  cascade without price impact under the chosen liquidation policy): accounts under maintenance
  and under zero at the shock, shortfall, liquidated notional, the insurance fund used and left,
  ADL, bad debt;
- **cascade** / **historical-cascade**: the shock reached in `steps` steps of a price path
  (`split_path`), each step run to its fixed point with square-root price impact of the
  liquidation flow (`core.stress.impact`: the data's 30-day daily volume and volatility per asset,
  `market_depth`, times the venue's share of that volume and a depth multiplier): `run_cascade`,
  round by round, with the insurance fund path and bad debt the engine's.

Nothing here re-implements the engine: this module parses the page's fields (InputError naming
the field) and lays the engine's reports out for the page.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from crossmargin.adapters.history.stress_windows import historical_moves, market_depth
from crossmargin.core.margin import MarginModel
from crossmargin.core.stress.impact import NO_IMPACT, MarketDepth, SquareRootImpact
from crossmargin.dashboard.source import VenueView
from crossmargin.engine.stress import (
    CASH_SYMBOL,
    CascadeResult,
    LocalShards,
    Policy,
    Shock,
    StressVenue,
    hypothetical_shock,
    policies,
    policy_named,
    prepare_venue,
    run_cascade,
    screen,
    shocks_scenario_set,
    split_path,
    window_shock,
)
from crossmargin.errors import InputError

MODES = ("shock", "historical", "cascade", "historical-cascade")
POLICIES = tuple(p.name for p in policies())
MAX_CASCADE_STEPS = 20
MAX_ROUNDS = 50
SCREEN_ROWS = 50  # the accounts with the largest losses listed on the page


@dataclass(frozen=True, slots=True, kw_only=True)
class StressRequest:
    """The page's form: `mode` (MODES), `move` (fraction, every underlying), `window` (a named
    historical window), `steps` of the cascade's price path, liquidation `policy` (POLICIES),
    `volume_share` of the data's daily volume that is the venue's, `depth_multiplier` (0.1:
    depth down 90 %)."""

    mode: str = "shock"
    move: float = -0.2
    window: str = "covid-2020-03"
    steps: int = 4
    policy: str = "full/queue"
    volume_share: float = 1.0
    depth_multiplier: float = 1.0

    def checked(self) -> StressRequest:
        if self.mode not in MODES:
            raise InputError("mode", f"unknown mode {self.mode!r}; choose one of {', '.join(MODES)}")
        if not (math.isfinite(self.move) and -0.99 <= self.move <= 10.0):
            raise InputError("move", f"must be a fraction in [-0.99, 10], got {self.move!r}")
        if not 1 <= self.steps <= MAX_CASCADE_STEPS:
            raise InputError("steps", f"must be 1..{MAX_CASCADE_STEPS}, got {self.steps!r}")
        if not (math.isfinite(self.volume_share) and 0.0 < self.volume_share <= 1.0):
            raise InputError("volume_share", f"must be a fraction in (0, 1], got {self.volume_share!r}")
        if not (math.isfinite(self.depth_multiplier) and 0.0 < self.depth_multiplier <= 100.0):
            raise InputError("depth_multiplier", f"must be in (0, 100], got {self.depth_multiplier!r}")
        policy_named(self.policy)
        return self

    @property
    def historical(self) -> bool:
        return self.mode.startswith("historical")

    @property
    def cascade(self) -> bool:
        return self.mode.endswith("cascade")


def window_names() -> tuple[str, ...]:
    """The historical windows the page offers: the named ones and the data's worst 2-day ones."""
    return tuple(m.window.name for m in historical_moves())


def stress_shock(venue: StressVenue, request: StressRequest) -> tuple[Shock, tuple[str, ...]]:
    """The request's shock on the venue's risk factors, and the factors a window proxied."""
    if not request.historical:
        moves = dict.fromkeys(venue.book.instruments.underlyings, request.move)
        return hypothetical_shock(venue.book, label=f"every underlying {request.move:+.0%}", moves=moves), ()
    for move in historical_moves():
        if move.window.name == request.window:
            return window_shock(venue, move)
    names = ", ".join(window_names())
    raise InputError("window", f"unknown window {request.window!r}; choose one of {names}")


def impact_of(request: StressRequest) -> SquareRootImpact:
    """Square-root impact from the data's depth, scaled as the request says (module docstring)."""
    depth = {
        symbol: MarketDepth(
            daily_volume_usd=d.daily_volume_usd * request.volume_share, daily_volatility=d.daily_volatility
        )
        for symbol, d in market_depth().items()
    }
    return SquareRootImpact(depth=depth, depth_multiplier=request.depth_multiplier)


def run(view: VenueView, request: StressRequest) -> dict[str, Any]:
    """The request on the view's venue (module docstring): the page's figures as JSON values."""
    request = request.checked()
    engine = view.engine
    venue = prepare_venue(engine.book, engine.market)
    shock, proxied = stress_shock(venue, request)
    policy = policy_named(request.policy)
    path = split_path(shock, request.steps) if request.cascade else [shock]
    impact = impact_of(request) if request.cascade else NO_IMPACT
    result = cascade(
        venue, engine.model, path, policy=policy, fund_usd=view.insurance_fund_usd, impact=impact
    )
    out: dict[str, Any] = {
        "kind": "cascade" if request.cascade else "shock",
        "mode": request.mode,
        "label": shock.label,
        # The shock per risk factor; the USD cash asset `prepare_venue` adds (never moved) is the
        # engine's bookkeeping, shown only when the venue holds it.
        "moves": {
            f: float(x) - 1.0
            for f, x in zip(shock.factors, shock.price_factor.tolist(), strict=True)
            if f != CASH_SYMBOL or CASH_SYMBOL in engine.book.assets.index
        },
        "proxied": list(proxied),
        "steps": len(path),
        "impact": (
            {"volume_share": request.volume_share, "depth_multiplier": request.depth_multiplier}
            if request.cascade
            else None
        ),
        "report": result.summary(),
    }
    if not request.cascade:
        out["rows"] = screen_rows(view, venue, shock)
    return out


def cascade(
    venue: StressVenue,
    model: MarginModel,
    path: list[Shock],
    *,
    policy: Policy,
    fund_usd: float,
    impact: SquareRootImpact,
) -> CascadeResult:
    """`run_cascade` on fresh local shards (`forward_stress` when one shock and no impact)."""
    return run_cascade(
        LocalShards.of(venue, model),
        venue,
        path,
        policy=policy,
        insurance_fund_usd=fund_usd,
        impact=impact,
        max_rounds=MAX_ROUNDS,
    )


def screen_rows(view: VenueView, venue: StressVenue, shock: Shock) -> list[dict[str, Any]]:
    """The screen's P&L per account (USD, before any liquidation), the SCREEN_ROWS largest losses:
    equity before (the venue's engine), P&L, equity + P&L."""
    pnl = screen(venue, shocks_scenario_set([shock]), funding_carry=shock.funding_carry[None, :])[:, 0]
    losing = np.flatnonzero(pnl < 0.0)
    order = losing[np.lexsort((losing, pnl[losing]))][:SCREEN_ROWS]
    equity = view.engine.result.equity_usd
    ids = venue.book.account_ids
    return [
        {
            "account_id": ids[r],
            "equity_before_usd": float(equity[r]),
            "pnl_usd": float(pnl[r]),
            "equity_after_usd": float(equity[r] + pnl[r]),
        }
        for r in order.tolist()
    ]

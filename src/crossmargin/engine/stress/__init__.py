"""Venue-wide stress and cascading liquidations on the long-lived engine.

The package's rooms: `shocks` (the scenario applied), `prepared` (the venue as the stress sees
it, and `screen`), `shards` (accounts in shards, their exact reduction, running them), `cascade`
(rounds, policies), `reverse` (the smallest breaking shock); every public name is here.

A stress is a scenario set (`core.scenarios.ScenarioSet`: price factors per risk factor, vol
shifts per instrument; a historical window, a hypothetical shock, a depeg) put through the
engine's one revaluation path. Two uses of it:

- `screen`: the whole set at once through `revalue_scenarios` (the scenario pass portfolio
  margin and VaR use): every account's equity after every scenario, no liquidation;
- `run_cascade`: one scenario (or a path of them) as rounds. Each round prices the venue at the
  shocked prices times the impact of the liquidation flow so far (`core.stress.impact`),
  re-margins every account with `RiskEngine.on_book`, liquidates those under maintenance
  (`core.stress.liquidation`), covers deficits with the insurance fund and ADL
  (`core.stress.waterfall`), and feeds the closed positions and sold collateral back as flow.
  It stops at the fixed point: a round that liquidates nothing. A forward stress is a cascade
  without impact.

Accounts live in shards (`StressShard`, each its own RiskEngine over a slice of the book); what
crosses shards is integer (lots, cash units), reduced by exact sums, and candidates for ADL in
global account order, so any sharding gives the same result as one shard (adapters.dask runs the
shards on a Dask cluster through the same `ShardRunner` protocol).

Money: risk maths in float64 (the engine's valuation and margin); holdings, fees, deficits, the
fund and haircuts in integer units (core.stress.liquidation), converted in one place per amount.
"""

from __future__ import annotations

from crossmargin.engine.stress.cascade import (
    CascadeResult,
    Policy,
    Progress,
    RoundRow,
    compare_policies,
    forward_stress,
    policies,
    policy_named,
    run_cascade,
)
from crossmargin.engine.stress.prepared import StressVenue, prepare_venue, screen, shocked_market
from crossmargin.engine.stress.reverse import ReverseStress, reverse_stress
from crossmargin.engine.stress.shards import (
    TOP_N,
    LocalShards,
    RoundMarket,
    ShardRound,
    ShardRunner,
    StressShard,
    split_venue,
)
from crossmargin.engine.stress.shocks import (
    CASH_SYMBOL,
    STABLECOINS,
    Shock,
    hypothetical_shock,
    risk_factors,
    shocks_of,
    shocks_scenario_set,
    split_path,
    window_shock,
)

__all__ = [
    "CASH_SYMBOL",
    "STABLECOINS",
    "TOP_N",
    "CascadeResult",
    "LocalShards",
    "Policy",
    "Progress",
    "ReverseStress",
    "RoundMarket",
    "RoundRow",
    "ShardRound",
    "ShardRunner",
    "Shock",
    "StressShard",
    "StressVenue",
    "compare_policies",
    "forward_stress",
    "hypothetical_shock",
    "policies",
    "policy_named",
    "prepare_venue",
    "reverse_stress",
    "risk_factors",
    "run_cascade",
    "screen",
    "shocked_market",
    "shocks_of",
    "shocks_scenario_set",
    "split_path",
    "split_venue",
    "window_shock",
]

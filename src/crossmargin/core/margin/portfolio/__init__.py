"""Portfolio margin: the worst loss of the whole portfolio over a scenario set, plus add-ons.

    PnL_s      = Σ_p q_p · (dA[i_p, s] + entry_term_p · dB[i_p, s])  +  Σ_k value_k · dF[k, s]
    loss_s     = weight_s · (-PnL_s) / f_num(s) - offset_s         (f_num: numeraire's price factor)
    grid_usd   = Σ_groups max(0, max_{s in group} loss_s)
    IM         = max(grid_usd, min_delta_usd) + Σ add-ons,        MM = maintenance_fraction · IM

Positions, collateral and the scenario revaluation come from `core.scenarios` (one revaluation per
instrument per scenario); the whole book is reduced by one fused numba kernel that keeps each
account's S scenario P&Ls in a small local buffer, so the accounts x scenarios matrix is never
materialised. With a coin numeraire (Deribit S:PM margins each currency in that coin) losses are
measured in the coin and converted back at today's price: a coin balance then carries no risk.

Floor and add-ons (each a parameter, 0 = off), on per-underlying net sensitivities accumulated in
the same pass (D_u: net delta, USD; G_u: gross delta, USD; V_u: net vega, USD per 1.00 vol):

    min delta (floor)  (unhedged·|D_u| + hedged·(G_u - |D_u|)/2)       Paradex "MinDeltaRisk"
    roll shock         Σ_{u,expiry} |D_{u,e}| · max(min_move, move_risk · T_e)    Deribit PM, OKX MR4
    delta contingency  rate · |D_u|
    short options      rate · Σ_short |q|·cs·S_u                 after Derive's optionPercent
                       (a flat fraction of each short's notional; no per-strike or per-expiry
                       netting, so not legacy Deribit PM's short-option charge, which nets them)
    concentration      c · |D_u| · (|D_u| / L_u)^power            L_u = liquidity (open interest), USD
    liquidity          half_spread_bps·1e-4·|D_u| + vega_half_spread·|V_u|
    funding provision  max(0, Σ_p q · next funding payment per contract)     Paradex
    fee provision      Σ_p |q| · closing fee per contract                     Paradex
    stablecoin depeg   when one stablecoin alone falls by depeg_move, the loss on the collateral
                       that backs the requirement: max over coins of min(loss, depeg_move·grid)
                       (accounts with positions only; an idle balance's depeg is a haircut
                       matter, not a margin one)             after Derive/Lyra depeg, OKX MR9

The package, one module per job:
    parameters   AddOns, JointSpec, PortfolioParams, ADDON_NAMES: the methodology as values
    scenarios    risk factors, grids or joint moves, depeg rows, the numeraire's factor
    addons       per-contract inputs of the floor and add-ons, the side rows
    inputs       KernelInputs: the market-side arrays packed for the kernel
    kernel       the fused reduction (and the what-if around it), written once
    scenario_pass  the scenario pass in plain numba: core.simd's intrinsics, portable
    backend      which build runs (CROSSMARGIN_KERNEL=simd|numba), compiled and cached per build
    totals       portfolio_totals, PortfolioTotals: the kernel over a whole book
    whatif       PortfolioSnapshot.what_if: one account after one trade
    explain      explain_account: one account densely
    model        PortfolioMargin, the margin model
"""

from typing import TYPE_CHECKING

from crossmargin._lazy import lazy_names

# Each name's module, imported on first access (PEP 562): the book loader needs the parameters
# only, and the kernel modules cost a margin run under another model ~40 ms of start-up.
_LAZY: dict[str, str] = {
    "InstrumentAddOnInputs": "crossmargin.core.margin.portfolio.addons",
    "addon_inputs": "crossmargin.core.margin.portfolio.addons",
    "KERNELS": "crossmargin.core.margin.portfolio.backend",
    "KERNEL_VARIABLE": "crossmargin.core.margin.portfolio.backend",
    "KernelBackend": "crossmargin.core.margin.portfolio.backend",
    "kernel_backend": "crossmargin.core.margin.portfolio.backend",
    "PortfolioExplanation": "crossmargin.core.margin.portfolio.explain",
    "explain_account": "crossmargin.core.margin.portfolio.explain",
    "KernelArrays": "crossmargin.core.margin.portfolio.inputs",
    "KernelInputs": "crossmargin.core.margin.portfolio.inputs",
    "kernel_inputs": "crossmargin.core.margin.portfolio.inputs",
    "PREFETCH": "crossmargin.core.margin.portfolio.kernel",
    "PortfolioMargin": "crossmargin.core.margin.portfolio.model",
    "ADDON_NAMES": "crossmargin.core.margin.portfolio.parameters",
    "AddOns": "crossmargin.core.margin.portfolio.parameters",
    "JointSpec": "crossmargin.core.margin.portfolio.parameters",
    "PROVISIONS": "crossmargin.core.margin.portfolio.parameters",
    "PortfolioParams": "crossmargin.core.margin.portfolio.parameters",
    "build_scenarios": "crossmargin.core.margin.portfolio.scenarios",
    "depeg_scenarios": "crossmargin.core.margin.portfolio.scenarios",
    "numeraire_factor": "crossmargin.core.margin.portfolio.scenarios",
    "risk_factors": "crossmargin.core.margin.portfolio.scenarios",
    "PortfolioTotals": "crossmargin.core.margin.portfolio.totals",
    "portfolio_totals": "crossmargin.core.margin.portfolio.totals",
    "PortfolioSnapshot": "crossmargin.core.margin.portfolio.whatif",
    "WhatIf": "crossmargin.core.margin.portfolio.whatif",
}

if TYPE_CHECKING:  # what mypy and IDEs see
    from crossmargin.core.margin.portfolio.addons import InstrumentAddOnInputs, addon_inputs
    from crossmargin.core.margin.portfolio.backend import (
        KERNEL_VARIABLE,
        KERNELS,
        KernelBackend,
        kernel_backend,
    )
    from crossmargin.core.margin.portfolio.explain import PortfolioExplanation, explain_account
    from crossmargin.core.margin.portfolio.inputs import KernelArrays, KernelInputs, kernel_inputs
    from crossmargin.core.margin.portfolio.kernel import PREFETCH
    from crossmargin.core.margin.portfolio.model import PortfolioMargin
    from crossmargin.core.margin.portfolio.parameters import (
        ADDON_NAMES,
        PROVISIONS,
        AddOns,
        JointSpec,
        PortfolioParams,
    )
    from crossmargin.core.margin.portfolio.scenarios import (
        build_scenarios,
        depeg_scenarios,
        numeraire_factor,
        risk_factors,
    )
    from crossmargin.core.margin.portfolio.totals import PortfolioTotals, portfolio_totals
    from crossmargin.core.margin.portfolio.whatif import PortfolioSnapshot, WhatIf

__all__ = [
    "ADDON_NAMES",
    "KERNELS",
    "KERNEL_VARIABLE",
    "PREFETCH",
    "PROVISIONS",
    "AddOns",
    "InstrumentAddOnInputs",
    "JointSpec",
    "KernelArrays",
    "KernelBackend",
    "KernelInputs",
    "PortfolioExplanation",
    "PortfolioMargin",
    "PortfolioParams",
    "PortfolioSnapshot",
    "PortfolioTotals",
    "WhatIf",
    "addon_inputs",
    "build_scenarios",
    "depeg_scenarios",
    "explain_account",
    "kernel_backend",
    "kernel_inputs",
    "numeraire_factor",
    "portfolio_totals",
    "risk_factors",
]


__getattr__, __dir__ = lazy_names(__name__, _LAZY, __all__)

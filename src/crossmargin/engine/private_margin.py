"""Inputs of a private margin check: what is public (market, schedules, the scenario revaluation)
and what one account keeps secret (positions, balances), plus the plaintext reference.

Everything an account's margin needs from the market is public: each instrument revalued under
each scenario of the public scenario set, the schedules, the haircut tiers. Only quantities and
balances are secret, so on the shares every quantity is a secret x public product or a secure
comparison. The multiparty computation (`adapters.mpc`) evaluates exactly these formulas:

    z          = [q (I), qe (I), piece (K·T), short (K)]       the secrets, asset units / contracts
                 qe_i = q_i · entry_term(E_i); piece_kt = clip(b_k − f_kt, 0, f_k,t+1 − f_kt);
                 short_k = min(b_k, 0)                           (progressive haircut tiers)
    equity     = z · value_coef        value_coef = [u, c, P_k·(1 − h_kt), P_k·w_k]
    cross MM   = Σ_i max_t(|q_i|·n_i·r_it − d_it) + q_i²·ρ_i + q⁺_i·mL_i + q⁻_i·mS_i
                 (a convex tier schedule is the max of its tiers' lines; ρ_i = rate_per_unit·n_i·s_i;
                 mL, mS: the option rule's per-contract maintenance, long and short)
    loss_s     = z · loss_coef_s − offset_s                     (weight/numeraire folded in)
    grid       = Σ_groups max(0, max_{s in g} loss_s)
    depeg      = ρ · max(0, max_{s in depeg rows} min(loss_s / ρ, grid))      ρ = depeg move
    |form_j|   = |Σ_i F_ji q_i|: per (underlying, expiry) bucket, rate × net delta (roll shock);
                 per underlying, net delta or net vega × a rate (floor, contingency, liquidity)
    floor      = Σ_{j floor} |form_j| + Σ_i |q_i|·fq_i
    add-ons    = Σ_{j add-on} |form_j| + Σ_i q⁻_i·so_i + depeg
    provisions = max(0, Σ_i q_i·fund_i) + Σ_i |q_i|·fee_i
    IM         = has_positions · (max(grid, floor) + add-ons + provisions)
    MM         = mm_fraction · (IM − provisions) + provisions

which are the cross model (`core.margin.cross`) and the portfolio kernel
(`core.margin.portfolio`, any preset: its grids or joint moves, dampener offsets, numeraire,
floor and add-ons) for one account. Refused with an InputError naming the field: tier schedules
whose rates fall with size (not convex), and the concentration add-on (|D|^1.5 / sqrt(L): a
fractional power, not computable exactly on integer shares).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.margin.options_rule import OptionMarginParams, option_unit_margin
from crossmargin.core.margin.portfolio import PortfolioMargin, PortfolioParams, addon_inputs
from crossmargin.core.margin.portfolio.scenarios import numeraire_factor
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation, entry_term, revalue
from crossmargin.errors import InputError

FloatArray = npt.NDArray[np.float64]

FLOOR, ADDON = 0.0, 1.0  # abs_kind


@dataclass(frozen=True, slots=True, kw_only=True)
class PublicMarginData:
    """Public inputs, float64 USD (shapes: I instruments, K assets, T haircut tiers, M margin
    tiers, S scenarios, J abs forms, Z = 2I + K·T + K secrets)."""

    value_coef_usd: FloatArray  # (Z,)
    tier_floor: FloatArray  # (K, T) +inf padded
    mm_slope_usd: FloatArray  # (I, M) per contract, padded by repeating tier 0
    mm_deduction_usd: FloatArray  # (I, M)
    mm_square_usd: FloatArray  # (I,)
    mm_long_usd: FloatArray  # (I,)
    mm_short_usd: FloatArray  # (I,)
    loss_coef_usd: FloatArray  # (S, Z)
    loss_offset_usd: FloatArray  # (S,)
    group: FloatArray  # (S,) grid group, −1 for a depeg row
    depeg_rate: FloatArray  # (1,)
    abs_coef_usd: FloatArray  # (J, I)
    abs_kind: FloatArray  # (J,) FLOOR or ADDON
    floor_per_contract_usd: FloatArray  # (I,)
    fee_per_contract_usd: FloatArray  # (I,)
    short_option_usd: FloatArray  # (I,)
    funding_usd: FloatArray  # (I,)
    maintenance_fraction: FloatArray  # (1,)

    @property
    def n_instruments(self) -> int:
        return int(self.mm_slope_usd.shape[0])

    def as_dict(self) -> dict[str, Any]:
        return {k: np.where(np.isinf(v), -1.0, v).tolist() for k, v in _fields(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PublicMarginData:
        arrays = {k: np.array(v, dtype=np.float64) for k, v in data.items() if k != "n_accounts"}
        arrays["tier_floor"] = np.where(arrays["tier_floor"] < 0, np.inf, arrays["tier_floor"])
        return cls(**arrays)


def _fields(obj: Any) -> dict[str, FloatArray]:
    return {name: getattr(obj, name) for name in obj.__dataclass_fields__}


@dataclass(frozen=True, slots=True, kw_only=True)
class AccountSecrets:
    quantity: FloatArray  # (I,) contracts, 0 where not held
    quantity_entry: FloatArray  # (I,) q · entry_term(E)
    balances: FloatArray  # (K,) asset units

    def as_dict(self) -> dict[str, Any]:
        return {k: v.tolist() for k, v in _fields(self).items()}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> AccountSecrets:
        return cls(**{k: np.array(v, dtype=np.float64) for k, v in data.items()})


def public_data(
    book: Book,
    market: MarketState,
    params: PortfolioParams,
    option_margin: OptionMarginParams | None = None,
) -> PublicMarginData:
    """The public side of one venue's margin (cross, with `option_margin`, and portfolio under
    `params`): from the instrument table, the market and the scenario revaluation, never from
    an account."""
    if book.instruments.n_instruments == 0:
        raise InputError("instruments", "private margin needs at least one instrument")
    valuation = revalue(book.instruments, market)
    value_coef = np.concatenate(
        [valuation.unit_value_usd, valuation.entry_coefficient_usd, *_collateral_columns(book, market, None)]
    )
    cross = _cross_schedule(book, valuation, option_margin or OptionMarginParams())
    return PublicMarginData(
        value_coef_usd=value_coef,
        tier_floor=book.assets.tier_floor,
        **cross,
        **_scenario_losses(book, market, valuation, params),
        **_addon_forms(book, market, valuation, params),
        maintenance_fraction=np.array([params.maintenance_fraction]),
    )


def _collateral_columns(book: Book, market: MarketState, move: FloatArray | None) -> list[FloatArray]:
    """Value per unit of each haircut piece and of each borrowed unit, USD; with `move` (K, S) the
    change per scenario, (K·T, S) and (K, S)."""
    assets = book.assets
    price = market.asset_prices(assets)  # collateral prices: the one read of them here
    per_piece = (price[:, None] * (1.0 - assets.tier_haircut)).reshape(-1)
    per_short = price * assets.liability_weight
    if move is None:
        return [per_piece, per_short]
    tiers = assets.tier_haircut.shape[1]
    return [np.repeat(move, tiers, axis=0) * per_piece[:, None], move * per_short[:, None]]


def _cross_schedule(
    book: Book, valuation: InstrumentValuation, option_params: OptionMarginParams
) -> dict[str, FloatArray]:
    table = book.instruments
    finite = np.isfinite(table.tier_floor_usd)
    rates = table.tier_maintenance_rate
    falling = np.any(finite[:, 1:] & (np.diff(rates, axis=1) < 0.0), axis=1)
    if np.any(falling):
        name = table.ids[int(np.flatnonzero(falling)[0])]
        raise InputError(
            f"instruments[{name}].margin", "private margin needs maintenance rates that rise with size"
        )
    first = rates[:, :1] * np.ones_like(rates)
    slope = valuation.notional_usd[:, None] * np.where(finite, rates, first)
    deduction = np.where(
        finite, table.tier_maintenance_deduction_usd, table.tier_maintenance_deduction_usd[:, :1]
    )
    options = option_unit_margin(table, valuation, option_params)
    return {
        "mm_slope_usd": slope,
        "mm_deduction_usd": deduction,
        "mm_square_usd": table.rate_per_unit * valuation.notional_usd * valuation.size_units,
        "mm_long_usd": options.maintenance_long_usd,
        "mm_short_usd": options.maintenance_short_usd,
    }


def _scenario_losses(
    book: Book, market: MarketState, valuation: InstrumentValuation, params: PortfolioParams
) -> dict[str, FloatArray]:
    """loss_s = z · coef_s − offset_s, the kernel's −weight_s/f_s · (PnL_s − equity·(f_s − 1))."""
    model = PortfolioMargin(params)
    revalued = model.revalued_scenarios(book, market, valuation)
    scenarios, reval = revalued.scenarios, revalued.reval
    f = numeraire_factor(scenarios, params.numeraire)
    move = f - 1.0
    pnl = np.vstack(
        [
            reval.d_unit_value_usd - valuation.unit_value_usd[:, None] * move,
            reval.d_entry_coefficient_usd - valuation.entry_coefficient_usd[:, None] * move,
            *_collateral_columns(book, market, reval.d_asset_factor - move[None, :]),
        ]
    )
    coef = (-pnl * (scenarios.weight / f)).T
    offset = scenarios.offsets.copy()
    group = scenarios.group.astype(np.float64)
    depeg = np.arange(scenarios.n_scenarios) >= revalued.n_grid_scenarios
    rate = params.addons.depeg_move
    group[depeg] = -1.0
    if np.any(depeg):  # min(loss, ρ·grid) = ρ·min(loss/ρ, grid): ρ stays out of the comparison
        coef[depeg] /= rate
        offset[depeg] /= rate
    return {
        "loss_coef_usd": coef,
        "loss_offset_usd": offset,
        "group": group,
        "depeg_rate": np.array([rate]),
    }


def _addon_forms(
    book: Book, market: MarketState, valuation: InstrumentValuation, params: PortfolioParams
) -> dict[str, FloatArray]:
    """The floor's and add-ons' linear forms in q (package docstring of core.margin.portfolio)."""
    table, addons = book.instruments, params.addons
    if addons.concentration_coefficient > 0.0 and any(
        addons.liquidity_usd.get(u, 0.0) for u in table.underlyings
    ):
        raise InputError(
            "addons.concentration_coefficient",
            "the concentration add-on (a fractional power of net delta) is not computable on shares",
        )
    inputs = addon_inputs(book, valuation, market, addons)
    delta, vega = inputs.delta_notional_usd, inputs.vega_usd
    unhedged, hedged = addons.min_delta_rates(table.underlyings)
    under = table.underlying_index
    forms: list[FloatArray] = []
    kinds: list[float] = []

    def add(coef: FloatArray, kind: float) -> None:
        if np.any(coef != 0.0):
            forms.append(coef)
            kinds.append(kind)

    for b in np.unique(inputs.roll_bucket):  # buckets and underlyings: a handful
        add(np.where(inputs.roll_bucket == b, delta * inputs.roll_rate[b], 0.0), ADDON)
    for u in range(len(table.underlyings)):
        mine = under == u
        floor_rate = unhedged[u] - 0.5 * hedged[u]
        if floor_rate < 0.0:
            raise InputError("addons.min_delta_hedged", "private margin needs hedged <= 2 x unhedged")
        add(np.where(mine, delta * floor_rate, 0.0), FLOOR)
        spread = addons.delta_contingency_rate + addons.delta_half_spread_bps * 1e-4
        add(np.where(mine, delta * spread, 0.0), ADDON)
        add(np.where(mine, vega * addons.vega_half_spread, 0.0), ADDON)
    n = table.n_instruments
    return {
        "abs_coef_usd": np.array(forms).reshape(len(forms), n),
        "abs_kind": np.array(kinds),
        "floor_per_contract_usd": np.abs(delta) * 0.5 * hedged[under],
        "fee_per_contract_usd": inputs.closing_fee_usd,
        "short_option_usd": addons.short_option_rate * inputs.short_option_notional_usd,
        "funding_usd": inputs.funding_payment_usd,
    }


def account_secrets(book: Book, row: int) -> AccountSecrets:
    quantity = np.zeros(book.instruments.n_instruments)
    quantity_entry = np.zeros_like(quantity)
    start, end = book.positions.indptr[row], book.positions.indptr[row + 1]
    cols = book.positions.indices[start:end]
    q = book.positions.data[start:end]
    quantity[cols] = q
    quantity_entry[cols] = q * entry_term(
        book.entry_price[start:end], book.instruments.reciprocal_entry[cols]
    )
    return AccountSecrets(
        quantity=quantity, quantity_entry=quantity_entry, balances=book.balances[row].copy()
    )


def secret_vector(public: PublicMarginData, secrets: AccountSecrets) -> FloatArray:
    """z: quantities, q·entry terms, haircut pieces and borrowed units (module docstring)."""
    finite = np.isfinite(public.tier_floor)
    floors = np.where(finite, public.tier_floor, 0.0)
    held = np.maximum(secrets.balances, 0.0)[:, None]
    upper = np.concatenate([public.tier_floor[:, 1:], np.full((floors.shape[0], 1), np.inf)], axis=1)
    pieces = np.where(finite, np.clip(held - floors, 0.0, upper - floors), 0.0)
    return np.concatenate(
        [secrets.quantity, secrets.quantity_entry, pieces.reshape(-1), np.minimum(secrets.balances, 0.0)]
    )


def plaintext_margin(public: PublicMarginData, secrets: AccountSecrets) -> dict[str, float]:
    """The module docstring's formulas in float64: what the shares compute, in the clear."""
    z = secret_vector(public, secrets)
    q = secrets.quantity
    size = np.abs(q)
    equity = float(z @ public.value_coef_usd)
    tiers = np.max(size[:, None] * public.mm_slope_usd - public.mm_deduction_usd, axis=1)
    cross_mm = float(
        np.sum(
            tiers
            + q * q * public.mm_square_usd
            + np.maximum(q, 0.0) * public.mm_long_usd
            + np.maximum(-q, 0.0) * public.mm_short_usd
        )
    )
    loss = public.loss_coef_usd @ z - public.loss_offset_usd
    groups = [np.max(loss[public.group == g]) for g in np.unique(public.group[public.group >= 0])]
    grid = float(sum(max(0.0, g) for g in groups))
    depeg_rows = loss[public.group < 0]
    depeg = float(public.depeg_rate[0] * max(0.0, float(np.max(np.minimum(depeg_rows, grid), initial=0.0))))
    forms = np.abs(public.abs_coef_usd @ q)
    floor = float(forms[public.abs_kind == FLOOR].sum() + size @ public.floor_per_contract_usd)
    addons = (
        float(forms[public.abs_kind == ADDON].sum() + np.maximum(-q, 0.0) @ public.short_option_usd) + depeg
    )
    provisions = max(0.0, float(q @ public.funding_usd)) + float(size @ public.fee_per_contract_usd)
    active = float(np.any(q != 0.0))
    initial = active * (max(grid, floor) + addons + provisions)
    fraction = float(public.maintenance_fraction[0])
    maintenance = fraction * (initial - active * provisions) + active * provisions
    return {
        "equity_usd": equity,
        "maintenance_margin_usd": cross_mm,
        "grid_requirement_usd": active * grid,
        "portfolio_initial_margin_usd": initial,
        "portfolio_maintenance_margin_usd": maintenance,
    }

"""Packing of the kernel's market-side inputs: one 64-byte row of instrument data per contract, the
shared scenario rows, the collateral rows and the scenario weights, padded to whole vector blocks."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.checks import check_all
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.margin.portfolio.addons import addon_inputs, side_charge_rows
from crossmargin.core.margin.portfolio.parameters import AddOns
from crossmargin.core.margin.portfolio.scenarios import numeraire_factor
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation
from crossmargin.core.scenarios import ScenarioRevaluation, ScenarioSet
from crossmargin.core.simd_layout import LANES

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]


class KernelArrays(NamedTuple):
    """Everything the per-account reduction reads besides the book's position runs and balances,
    one typed tuple passed whole to the compiled kernel (fields read by name, so no argument order
    is kept by hand), packed so that a position touches one 64-byte row of `instrument_data` and
    one scenario row.

    instrument_data (I, 8), per contract: 0 delta notional, 1 vega, 2 hedged min-delta charge on
    gross delta (|delta notional|·hedged_u/2), 3 short-option charge (short_option_rate·cs·S), 4
    funding payment, 5 closing fee, 6 roll-shock rate of its (underlying, expiry) bucket, 7 floor
    rate on the underlying's |net delta| (unhedged_u - hedged_u/2). inverse_liquidity (I,):
    1/liquidity of its underlying when the concentration add-on applies there, else 0 (kept apart
    so the rows stay one cache line: the kernel's instrument data then fits in L2 beside the
    scenario rows).
    Scenario rows: instrument i's scenario P&L per contract, dA + dB, is
    row_scale[i]·scenario_rows[row_of[i]]. Each instrument moves through exactly one of the two
    coefficients (an inverse delta-one contract only through its entry coefficient, every other
    one only through its unit value), so a position's scenario P&L is one multiply-add row,
    pnl_weight·row_scale[i]·scenario_rows[row_of[i]] (pnl_weight = q/E for inverse delta-one, q
    otherwise: see core.position_runs). All delta-one contracts on an underlying share its move
    row (scale cs·mark or cs·spot); each option has its own row (scale 1). On the bench's 5,000
    instruments that is 1,918 rows instead of 5,000: 0.5 MB instead of 1.3 MB of rows, gathered
    at random, which then mostly stay in the 1 MB L2 cache.
    side_rows (I, 8): the floor and add-ons of a position alone in its underlying, per contract:
    lanes roll shock, delta contingency, short option, - (concentration: never alone, see
    core.position_runs), liquidity, funding, fee, floor (min delta). Alone in its underlying and
    bucket, |D_u| = |q|·|delta_i|, so each is a per-contract charge times |q|, except the short
    option charge (times the short quantity max(-q, 0)) and funding (times q): the lanes of
    core.simd's side stream (SIDE_SHORT_LANE, SIDE_SIGNED_LANE), one 64-byte row per instrument.
    asset_pnl (K, S_pad): price_k·dF[k, s], the P&L of one haircut unit of asset k.
    S_pad = S rounded up to whole vector blocks (core.simd.LANES); the padding columns are zero and
    never read back. Scenario arrays: weight / f and offset (S_pad,), zero-padded like the
    matrices; f - 1 (numeraire) and group (S,). rates:
    delta contingency, short option, concentration coefficient and power, delta half spread, vega
    half spread, depeg move. unit_value_usd, entry_coefficient_usd (I,): today's value per contract
    (pricing.InstrumentValuation), for the equity a coin numeraire converts.
    """

    instrument_data: FloatArray
    inverse_liquidity: FloatArray
    side_rows: FloatArray
    scenario_rows: FloatArray
    row_of: npt.NDArray[np.int32]
    row_scale: FloatArray
    asset_pnl: FloatArray
    asset_price: FloatArray
    weight: FloatArray
    numeraire_move: FloatArray
    offset: FloatArray
    group: IntArray
    n_groups: int
    n_grid: int
    n_scenarios: int
    rates: FloatArray
    bookkeeping: bool
    use_numeraire: bool
    unit_value_usd: FloatArray
    entry_coefficient_usd: FloatArray


@dataclass(frozen=True, slots=True)
class KernelInputs:
    """The kernel's market-side arrays, and the underlyings whose positions they need in the runs'
    general section (where the concentration add-on applies: never linear, even alone), which
    picks the book's position runs (`Book.position_runs_for`)."""

    arrays: KernelArrays
    general_underlyings: frozenset[str]


INSTRUMENT_COLUMNS = 8  # one 64-byte row per instrument


def _padded(matrix: FloatArray) -> FloatArray:
    """Columns zero-padded to a whole number of vector blocks, C order."""
    rows, cols = matrix.shape
    width = max(LANES, -(-cols // LANES) * LANES)
    out = np.zeros((rows, width))
    out[:, :cols] = matrix
    return out


def _scenario_rows(
    table: InstrumentTable, reval: ScenarioRevaluation
) -> tuple[FloatArray, npt.NDArray[np.int32], FloatArray]:
    """(rows (R, S_pad), row_of (I,), row_scale (I,)): see KernelInputs. Without the factored
    delta-one form (a hand-built revaluation), every instrument keeps its own row. With it,
    delta-one rows are scale x underlying move by construction (`revalue_scenarios`; a test
    checks every row bit for bit), so only the option rows are read from the matrices."""
    n = table.n_instruments
    if reval.underlying_move is None or reval.delta_one_scale_usd is None:
        return (
            _padded(reval.d_unit_value_usd + reval.d_entry_coefficient_usd),
            np.arange(n, dtype=np.int32),
            np.ones(n),
        )
    move = reval.underlying_move
    option = table.is_option
    options = np.flatnonzero(option)
    n_under = move.shape[0]
    option_rank = np.cumsum(option) - 1
    row_of = np.where(option, n_under + option_rank, table.underlying_index).astype(np.int32)
    row_scale = np.where(option, 1.0, reval.delta_one_scale_usd)
    option_rows = reval.d_unit_value_usd[options] + reval.d_entry_coefficient_usd[options]
    return _padded(np.vstack([move, option_rows])), row_of, row_scale


def kernel_inputs(
    book: Book,
    market: MarketState,
    valuation: InstrumentValuation,
    scenarios: ScenarioSet,
    reval: ScenarioRevaluation,
    addons: AddOns,
    *,
    n_grid_scenarios: int,
    numeraire: str | None,
) -> KernelInputs:
    table = book.instruments
    inputs = addon_inputs(book, valuation, market, addons)
    reciprocal = table.reciprocal_entry
    # The invariant the single-row form rests on (see the class docstring).
    check_all(~np.any(reval.d_unit_value_usd[reciprocal] != 0.0), "inverse delta-one: no unit-value move")
    check_all(~np.any(reval.d_entry_coefficient_usd[~reciprocal] != 0.0), "only inverse delta-one move dB")
    underlying = table.underlying_index
    liquidity = np.array([addons.liquidity_usd.get(u, 0.0) for u in table.underlyings], dtype=np.float64)
    unhedged, hedged = addons.min_delta_rates(table.underlyings)
    concentration_on = (liquidity > 0.0) & (addons.concentration_coefficient > 0.0)
    inverse_liquidity = np.where(concentration_on, 1.0 / np.where(liquidity > 0.0, liquidity, 1.0), 0.0)
    instrument_data = np.zeros((table.n_instruments, INSTRUMENT_COLUMNS))
    instrument_data[:, 0] = inputs.delta_notional_usd
    instrument_data[:, 1] = inputs.vega_usd
    instrument_data[:, 2] = np.abs(inputs.delta_notional_usd) * 0.5 * hedged[underlying]
    instrument_data[:, 3] = addons.short_option_rate * inputs.short_option_notional_usd
    instrument_data[:, 4] = inputs.funding_payment_usd
    instrument_data[:, 5] = inputs.closing_fee_usd
    instrument_data[:, 6] = inputs.roll_rate[inputs.roll_bucket]
    instrument_data[:, 7] = (unhedged - 0.5 * hedged)[underlying]
    side_rows = side_charge_rows(instrument_data, unhedged[underlying], addons)
    rates = np.array(
        [
            addons.delta_contingency_rate,
            addons.short_option_rate,
            addons.concentration_coefficient,
            addons.concentration_power,
            addons.delta_half_spread_bps * 1e-4,
            addons.vega_half_spread,
            addons.depeg_move,
        ]
    )
    bookkeeping = bool(
        addons.delta_contingency_rate
        or addons.short_option_rate
        or np.any(concentration_on)
        or addons.delta_half_spread_bps
        or addons.vega_half_spread
        or np.any(unhedged)
        or np.any(hedged)
        or np.any(inputs.roll_rate)
        or np.any(inputs.funding_payment_usd)
        or np.any(inputs.closing_fee_usd)
    )
    factor = numeraire_factor(scenarios, numeraire)
    price = market.asset_prices(book.assets)
    rows, row_of, row_scale = _scenario_rows(table, reval)
    arrays = KernelArrays(
        instrument_data=instrument_data,
        inverse_liquidity=inverse_liquidity[underlying],
        side_rows=side_rows,
        scenario_rows=rows,
        row_of=row_of,
        row_scale=row_scale,
        asset_pnl=_padded(price[:, None] * reval.d_asset_factor),
        asset_price=price,
        weight=_padded((scenarios.weight / factor)[None, :])[0],
        numeraire_move=factor - 1.0,
        offset=_padded(scenarios.offsets[None, :])[0],
        group=scenarios.group,
        n_groups=int(scenarios.group[:n_grid_scenarios].max()) + 1 if n_grid_scenarios else 0,
        n_grid=n_grid_scenarios,
        n_scenarios=scenarios.n_scenarios,
        rates=rates,
        bookkeeping=bookkeeping,
        use_numeraire=numeraire is not None,
        unit_value_usd=valuation.unit_value_usd,
        entry_coefficient_usd=valuation.entry_coefficient_usd,
    )
    general = frozenset(u for u, on in zip(table.underlyings, concentration_on, strict=True) if on)
    return KernelInputs(arrays=arrays, general_underlyings=general)

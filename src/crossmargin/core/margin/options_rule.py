"""Deribit's standard-margin rule for options, per contract, in USD.

Deribit inverse (coin-settled) options, amounts in coin per 1 coin of underlying, mark in coin,
U = underlying price (the option's forward, Deribit's `underlying_price`), OTM = out-of-the-money
amount in USD (call: max(K - U, 0); put: max(U - K, 0)):

    short call  IM = max(0.15 - OTM/U, 0.10) + mark            MM = 0.075 + mark
    short put   MM = max(0.075, 0.075 * mark) + mark
                IM = max( max(0.15 - OTM/U, 0.10) + mark, MM )
    long        IM = MM = 0 once held (the premium was paid)

Source: Deribit Knowledge Base "Inverse Options" (support.deribit.com, article 25944688327069,
section "Margin"), as reproduced by TSLab "Deribit Margin Requirements Calculation"
(doc.tslab.pro) and QuantConnect Lean's DeribitOptionMarginModel; constants unchanged since
the 2019 standard-margin update. Linear (USDC) options use the same rule multiplied through by U
(bit.com "Margin Rules for USD-Margined Options" publishes exactly this form with a worked
example; see tests/golden). Coin amounts are converted to USD at the index price.

A long option's premium is its only risk; by default it cannot back other positions
(`long_premium_as_margin`), so its IM = MM = its mark value and its net effect on free equity is 0.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.checks import check_range
from crossmargin.core.instruments import InstrumentTable
from crossmargin.core.pricing import InstrumentValuation

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, slots=True, kw_only=True)
class OptionMarginParams:
    """Deribit standard option margin constants (fractions of the underlying price)."""

    initial_rate: float = 0.15
    initial_floor_rate: float = 0.10
    maintenance_rate: float = 0.075
    long_premium_as_margin: bool = True

    def __post_init__(self) -> None:
        check_range(self.initial_rate, low=0.0, high=1.0, name="option_margin.initial_rate")
        check_range(
            self.initial_floor_rate,
            low=0.0,
            high=self.initial_rate,
            name="option_margin.initial_floor_rate",
        )
        check_range(
            self.maintenance_rate,
            low=0.0,
            high=self.initial_floor_rate,
            name="option_margin.maintenance_rate",
        )


@dataclass(frozen=True, slots=True)
class OptionUnitMargin:
    """USD per contract, shapes (I,); zero for non-options."""

    initial_short_usd: FloatArray
    maintenance_short_usd: FloatArray
    initial_long_usd: FloatArray
    maintenance_long_usd: FloatArray


def option_unit_margin(
    instruments: InstrumentTable, valuation: InstrumentValuation, params: OptionMarginParams
) -> OptionUnitMargin:
    """Per-contract option requirements (module docstring), vectorised over instruments."""
    option = instruments.is_option
    inverse = instruments.is_inverse
    underlying = valuation.forward_usd
    strike = np.where(option, instruments.strike, 1.0)
    call = instruments.option_sign > 0
    otm_fraction = (
        np.where(call, np.maximum(strike - underlying, 0.0), np.maximum(underlying - strike, 0.0))
        / underlying
    )
    # Everything per unit of underlying in the settlement currency's "units of U":
    # inverse: coin; linear: USD / U. Then one conversion to USD per contract.
    mark_units = np.where(
        inverse,
        valuation.option_premium_settlement,
        valuation.option_premium_settlement / underlying,
    )
    initial = np.maximum(params.initial_rate - otm_fraction, params.initial_floor_rate) + mark_units
    maintenance_call = params.maintenance_rate + mark_units
    # Linear form max(0.075·U, 0.075·mark_usd) divided by U is the coin form on mark_units.
    maintenance_put = np.maximum(params.maintenance_rate, params.maintenance_rate * mark_units) + mark_units
    maintenance = np.where(call, maintenance_call, maintenance_put)
    initial = np.where(call, initial, np.maximum(initial, maintenance_put))
    to_usd = instruments.contract_size * np.where(inverse, valuation.spot_usd, underlying)
    long_value = (
        np.where(option, valuation.unit_value_usd, 0.0)
        if params.long_premium_as_margin
        else np.zeros_like(to_usd)
    )
    zero = np.zeros_like(to_usd)
    return OptionUnitMargin(
        initial_short_usd=np.where(option, initial * to_usd, zero),
        maintenance_short_usd=np.where(option, maintenance * to_usd, zero),
        initial_long_usd=long_value,
        maintenance_long_usd=long_value,
    )

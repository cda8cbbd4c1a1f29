"""What the floor and add-ons need per instrument (per contract, USD), and the side rows that charge
a position alone in its underlying in the kernel's vector loop."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from crossmargin.core.book import Book
from crossmargin.core.instruments import NO_EXPIRY_NS, InstrumentKind
from crossmargin.core.margin.portfolio.parameters import AddOns
from crossmargin.core.market import MarketState
from crossmargin.core.pricing import InstrumentValuation
from crossmargin.core.simd_layout import LANES, SIDE_SHORT_LANE, SIDE_SIGNED_LANE

FloatArray = npt.NDArray[np.float64]
IntArray = npt.NDArray[np.int64]

FLOOR_LANE = 7  # of the side rows and the per-account add-on sums (the depeg column's slot)


@dataclass(frozen=True, slots=True)
class InstrumentAddOnInputs:
    """Per contract, (I,): what the floor and add-ons need from each instrument, plus the
    (underlying, expiry) roll bucket of each instrument and each bucket's roll-shock rate."""

    delta_notional_usd: FloatArray
    vega_usd: FloatArray
    short_option_notional_usd: FloatArray
    funding_payment_usd: FloatArray
    closing_fee_usd: FloatArray
    roll_bucket: IntArray
    roll_rate: FloatArray


def addon_inputs(
    book: Book, valuation: InstrumentValuation, market: MarketState, addons: AddOns
) -> InstrumentAddOnInputs:
    table = book.instruments
    option = table.is_option
    spot = valuation.spot_usd
    perp = table.kind == InstrumentKind.PERPETUAL
    # Funding: a long pays rate x notional per period when the rate is positive (zero-sum).
    funding = np.where(perp, valuation.notional_usd * market.funding_rate_8h * addons.funding_periods, 0.0)
    fee = addons.fee_rate * valuation.notional_usd
    fee = np.where(option, np.minimum(fee, addons.option_fee_cap * np.abs(valuation.unit_value_usd)), fee)
    # Roll buckets: one per (underlying, expiry); perpetuals and spot share the no-expiry bucket.
    buckets = book.risk_buckets
    expiry = buckets.expiry_ns
    years = np.where(expiry == NO_EXPIRY_NS, 0.0, (expiry - market.valuation_ns) / (365.0 * 86400e9))
    rate = np.maximum(addons.min_annualised_move, addons.annualised_move_risk * years)
    return InstrumentAddOnInputs(
        delta_notional_usd=valuation.delta_usd * spot,
        vega_usd=valuation.vega_usd,
        short_option_notional_usd=np.where(option, table.contract_size * spot, 0.0),
        funding_payment_usd=funding,
        closing_fee_usd=fee,
        roll_bucket=buckets.bucket,
        roll_rate=rate.astype(np.float64),
    )


def side_charge_rows(instrument_data: FloatArray, unhedged: FloatArray, addons: AddOns) -> FloatArray:
    """(I, 8): see KernelInputs. Per contract: the charges per |q|, the short-option charge per
    short contract and the funding payment per signed contract."""
    delta = np.abs(instrument_data[:, 0])
    rows = np.zeros((instrument_data.shape[0], LANES))
    rows[:, 0] = delta * instrument_data[:, 6]
    rows[:, 1] = addons.delta_contingency_rate * delta
    rows[:, SIDE_SHORT_LANE] = instrument_data[:, 3]
    rows[:, 4] = addons.delta_half_spread_bps * 1e-4 * delta + addons.vega_half_spread * np.abs(
        instrument_data[:, 1]
    )
    rows[:, SIDE_SIGNED_LANE] = instrument_data[:, 4]  # funding: q x payment, either side
    rows[:, 6] = instrument_data[:, 5]
    rows[:, FLOOR_LANE] = unhedged * delta  # unhedged·|D_u| + hedged·(G_u - |D_u|)/2, G_u = |D_u|
    return rows

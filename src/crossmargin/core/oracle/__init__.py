"""The oracle layer: robust multi-source prices, circuit breakers, mark prices, per-action
validity and conservative valuation. Pure: quotes and times (int ns) in, prices out; the state is
an explicit immutable value, `update(state, quotes, now_ns=..., params=...) -> (state, result)`.

See docs/oracle.md for the methodology and the policy table.
"""

from crossmargin.core.oracle.aggregate import Aggregate, QuoteMatrix, aggregate, weighted_median
from crossmargin.core.oracle.mark import (
    PerpMarkParams,
    PremiumState,
    VolSurface,
    annualised_basis,
    binance_perp_mark,
    futures_mark,
    option_marks,
    perp_mark,
    twap,
)
from crossmargin.core.oracle.params import NS_PER_MS, NS_PER_SECOND, OracleParams, ParamTable
from crossmargin.core.oracle.policy import (
    Action,
    LiquidationPaused,
    OraclePolicy,
    Validity,
    ValidityRule,
    liquidation_pauses,
    require_valid,
    valid_for,
    validity,
)
from crossmargin.core.oracle.state import OracleState, OracleUpdate, PriceStatus, update
from crossmargin.core.oracle.valuation import (
    ConservativePrices,
    conservative_prices,
    uncertainty_addon,
    value_balances_usd,
    widened_haircut,
)

__all__ = [
    "NS_PER_MS",
    "NS_PER_SECOND",
    "Action",
    "Aggregate",
    "ConservativePrices",
    "LiquidationPaused",
    "OracleParams",
    "OraclePolicy",
    "OracleState",
    "OracleUpdate",
    "ParamTable",
    "PerpMarkParams",
    "PremiumState",
    "PriceStatus",
    "QuoteMatrix",
    "Validity",
    "ValidityRule",
    "VolSurface",
    "aggregate",
    "annualised_basis",
    "binance_perp_mark",
    "conservative_prices",
    "futures_mark",
    "liquidation_pauses",
    "option_marks",
    "perp_mark",
    "require_valid",
    "twap",
    "uncertainty_addon",
    "update",
    "valid_for",
    "validity",
    "value_balances_usd",
    "weighted_median",
    "widened_haircut",
]

"""Wire the crowding add-on to a book at its valuation time: the market's history signals as known
then (no look-ahead), the book's own signals measured on the whole book, one `CrowdedMargin`.

    model = crowded_model(CrossMargin(), book, market, open_interest=..., funding=...)
    engine = RiskEngine(book, market, model)        # or engine.use_model(model) to refresh

History values of day d are known at 24:00 UTC of d (`core.var.history.known_until`), so a book
valued at 2022-11-09T12:00Z sees open interest and funding up to 2022-11-08.
"""

from __future__ import annotations

import numpy as np

from crossmargin.core.book import Book
from crossmargin.core.margin import MarginModel
from crossmargin.core.margin.crowding import CrowdedMargin, CrowdingParams, MarketCrowding
from crossmargin.core.market import MarketState
from crossmargin.core.market_history import DailyPanel, funding_apr, open_interest_ratio
from crossmargin.core.var.history import known_until
from crossmargin.engine.ports import FundingSource, OpenInterestSource


def _last_known(panel: DailyPanel | None, symbol: str, last_day: np.datetime64) -> np.ndarray:
    """The symbol's daily values up to `last_day` (empty if the panel or symbol is missing)."""
    if panel is None or not panel.has(symbol):
        return np.zeros(0)
    keep = panel.days <= last_day
    values: np.ndarray = panel.values[keep, panel.symbols.index(symbol)]
    return values


def market_crowding_at(
    valuation_ns: int,
    underlyings: tuple[str, ...],
    params: CrowdingParams,
    *,
    open_interest: OpenInterestSource | None = None,
    funding: FundingSource | None = None,
) -> MarketCrowding:
    """Funding (annualised EWMA) and open interest over its trailing mean per underlying, from the
    days known at `valuation_ns`; NaN where a source, a symbol or enough days are missing. A
    signal more than a day old (the source stops before the valuation) is unknown, not stale."""
    last_day = known_until(valuation_ns)
    oi_panel = open_interest.open_interest_history() if open_interest is not None else None
    funding_panel = funding.funding_history() if funding is not None else None
    funding_now = np.full(len(underlyings), np.nan)
    ratio_now = np.full(len(underlyings), np.nan)
    for n, symbol in enumerate(underlyings):  # a handful of underlyings
        rates = _last_known(funding_panel, symbol, last_day)
        if rates.size and funding_panel is not None and funding_panel.days[rates.size - 1] == last_day:
            funding_now[n] = funding_apr(rates, halflife_days=params.funding_halflife_days)[-1]
        oi = _last_known(oi_panel, symbol, last_day)
        if oi.size and oi_panel is not None and oi_panel.days[oi.size - 1] == last_day:
            ratio_now[n] = open_interest_ratio(oi, window_days=params.open_interest_window_days)[-1]
    return MarketCrowding(underlyings=underlyings, funding_apr=funding_now, open_interest_ratio=ratio_now)


def crowded_model(
    base: MarginModel,
    book: Book,
    market: MarketState,
    params: CrowdingParams | None = None,
    *,
    open_interest: OpenInterestSource | None = None,
    funding: FundingSource | None = None,
) -> CrowdedMargin:
    """`base` plus the crowding add-on, its state measured on `book` at `market` with the history
    signals known at the market's valuation time."""
    chosen = params if params is not None else CrowdingParams()
    history = market_crowding_at(
        market.valuation_ns,
        book.instruments.underlyings,
        chosen,
        open_interest=open_interest,
        funding=funding,
    )
    return CrowdedMargin.measured(base, book, market, chosen, history)

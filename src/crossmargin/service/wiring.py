"""Adapters wired into the engine: the SQL event store, the system clock, the opening book -> the
venue; margin models by name. The one place that knows which adapter implements which port."""

from __future__ import annotations

from pathlib import Path

from crossmargin.core.margin import MarginModel
from crossmargin.engine.ports import PriceHistorySource
from crossmargin.engine.venue import Genesis, Venue
from crossmargin.errors import InputError
from crossmargin.service.settings import ServiceSettings


def genesis_of_book(path: Path) -> Genesis:
    """The opening state: the book's balances as deposits, its positions transferred in at entry
    (`engine.simulation.simulation_from_book`), as the venue's genesis record."""
    from crossmargin.adapters.files import load_book
    from crossmargin.engine.simulation import simulation_from_book

    sim = simulation_from_book(load_book(path))
    return Genesis.from_ledger(label=str(path), config=sim.config, state=sim.state, postings=sim.postings)


def open_venue(settings: ServiceSettings) -> Venue:
    """The venue over `settings.database_url`, recovered from its log; an empty log starts from
    the opening book (`settings.book`)."""
    from crossmargin.adapters.clock import SystemClock
    from crossmargin.adapters.sql import SqlEventStore

    genesis = genesis_of_book(settings.book)
    store = SqlEventStore.connect(settings.database_url, schema=settings.schema)
    try:
        return Venue.open(store, genesis, clock=SystemClock(), settings=settings.venue)
    except BaseException:
        store.close()
        raise


def price_history() -> PriceHistorySource | None:
    """The shared daily closes ($CROSSMARGIN_DATA/prices_daily_yahoo.csv) when the file is there,
    else None (historical stresses then answer that no history is configured)."""
    from crossmargin.adapters.history.prices import shared_price_history

    history = shared_price_history()
    return history if history.is_available() else None


def margin_model(venue: Venue, name: str, preset: str | None) -> tuple[MarginModel, str | None]:
    """A core margin model by name, with the venue's parameters in force (cross, isolated) or a
    methodology preset (portfolio: default deribit-pm; var: the default VaR preset, over the
    shared daily closes of $CROSSMARGIN_DATA; without them an InputError naming the file)."""
    from crossmargin.core.margin import CrossMargin, IsolatedMargin
    from crossmargin.core.margin.portfolio import PortfolioMargin
    from crossmargin.core.margin.presets import PORTFOLIO_PRESETS, portfolio_preset
    from crossmargin.core.margin.sensitivity import SensitivityMargin

    params = venue.config.margin
    if name in ("cross", "isolated", "sensitivity") and preset is not None:
        raise InputError("preset", f"the {name} model takes no preset here")
    if name == "cross":
        return CrossMargin(params), None
    if name == "isolated":
        return IsolatedMargin(params), None
    if name == "sensitivity":
        return SensitivityMargin(), None
    if name == "portfolio":
        chosen = preset or "deribit-pm"
        if chosen not in PORTFOLIO_PRESETS:
            raise InputError(
                "preset", f"unknown portfolio preset {chosen!r}; one of {', '.join(PORTFOLIO_PRESETS)}"
            )
        return PortfolioMargin(portfolio_preset(chosen)), chosen
    if name == "var":
        from crossmargin.adapters.history.prices import shared_price_history
        from crossmargin.engine.var_run import var_model

        var = var_model(preset, history=shared_price_history())
        return var, var.params.name
    raise InputError("model", f"unknown model {name!r}")

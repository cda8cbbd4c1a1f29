"""`crossmargin dashboard [BOOK]`: the web dashboard on its own, over a book imported into an
in-memory exact ledger (no database): the risk team's picture of a book file, live.

The margin service serves the same dashboard at /dashboard over its durable venue
(`crossmargin serve`); this command is for looking at a book without running a venue. It prints a
risk key and one holder key per account (256 random bits each, valid while it runs); the risk key
also moves prices: `curl -X POST -H "Authorization: Bearer KEY" -d '{"index_prices": {"BTC": 80000}}'
-H 'Content-Type: application/json' http://HOST:PORT/api/prices`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from crossmargin.cli.arguments import check_usd
from crossmargin.cli.render import fail
from crossmargin.errors import CrossMarginError

BUNDLED_BOOK = Path("examples") / "desk.yaml"


def dashboard(
    book: Annotated[Path, typer.Argument(help="Book file (YAML/JSON) to serve")] = BUNDLED_BOOK,
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(min=0, max=65535, help="Port, 0-65535")] = 8050,
    insurance_usd: Annotated[float, typer.Option(help="Insurance fund seeded in the quote asset, USD")] = 1e6,
    backtest_book: Annotated[
        Path | None, typer.Option(help="Spot/perpetual book for the back-test page [default: beside BOOK]")
    ] = None,
) -> None:
    """Serve the web dashboard over a book: overview, accounts, stress, back-test, warnings."""
    import uvicorn

    from crossmargin.adapters.files import load_book
    from crossmargin.adapters.history.prices import shared_price_history
    from crossmargin.dashboard.app import create_app, issue_keys
    from crossmargin.dashboard.standalone import BookVenue

    try:
        check_usd(insurance_usd, "--insurance-usd")
        loaded = load_book(book)
        history = shared_price_history()
        venue = BookVenue(
            loaded, insurance_fund_usd=insurance_usd, history=history if history.is_available() else None
        )
        backtest_path = backtest_book if backtest_book is not None else book.parent / "backtest.yaml"
        backtest = load_book(backtest_path) if backtest_path.is_file() else None
    except CrossMarginError as error:
        fail(error)
    keys = issue_keys(tuple(loaded.book.account_ids))
    typer.echo(f"dashboard: http://{host}:{port}/dashboard/login")
    for key, holder in keys.items():
        typer.echo(f"  {holder.role:<6} {holder.account or '(whole venue)':<24} {key}")
    uvicorn.run(create_app(venue, keys, backtest_book=backtest), host=host, port=port, log_level="warning")

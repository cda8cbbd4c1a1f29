"""`crossmargin synth --accounts N --out DIR`: a seeded synthetic venue book as Parquet."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from crossmargin.cli.render import fail
from crossmargin.errors import CrossMarginError


def synth(
    accounts: Annotated[int, typer.Option(help="Number of accounts")],
    out: Annotated[Path, typer.Option(help="Output directory (replaced whole)")],
    seed: Annotated[int, typer.Option(help="Random seed: the same seed gives the same book")] = 0,
    long_share: Annotated[float, typer.Option(help="Probability a perpetual position is long")] = 0.6,
    option_sellers: Annotated[float, typer.Option(help="Share of accounts selling options")] = 0.05,
    whales: Annotated[int, typer.Option(help="Number of whale accounts")] = 5,
) -> None:
    """Write a synthetic book: heavy-tailed sizes, lognormal leverage, long skew, option sellers,
    whales; seeded and reproducible."""
    from crossmargin.adapters.files.synth_parquet import write_synth
    from crossmargin.core.synthetic import SynthSpec

    console = Console(stderr=True)
    try:
        spec = SynthSpec(
            n_accounts=accounts,
            seed=seed,
            long_share=long_share,
            option_seller_share=option_sellers,
            whales=whales,
        )
        with Progress(
            TextColumn("synth"),
            BarColumn(),
            MofNCompleteColumn(),
            TimeRemainingColumn(),
            console=console,
            transient=True,
        ) as progress:
            task = progress.add_task("accounts", total=accounts)
            write_synth(spec, out, progress=lambda done, total: progress.update(task, completed=done))
    except CrossMarginError as error:
        fail(error)
    console.print(f"wrote {accounts:,} accounts to {out}")

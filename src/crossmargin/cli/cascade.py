"""`crossmargin cascade BOOK --shock ...`: cascading liquidations with square-root price impact,
round by round, on one process or a Dask cluster; `--compare-policies` runs every policy."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from crossmargin.adapters.files.staging import cannot_write, check_writable
from crossmargin.cli.arguments import check_usd
from crossmargin.cli.render import fail
from crossmargin.cli.stress import load_venue, parse_moves
from crossmargin.errors import CrossMarginError, InputError


def cascade(
    book: Annotated[Path, typer.Argument(help="Book file, or a directory written by `crossmargin synth`")],
    shock: Annotated[str, typer.Option(help="Shock SYMBOL=MOVE,..., e.g. BTC=-0.12,ETH=-0.16,SOL=-0.31")],
    steps: Annotated[int, typer.Option(help="Reach the shock in this many steps of a price path")] = 1,
    depth_multiplier: Annotated[
        float, typer.Option(help="Scale of every daily volume (0.1: depth down 90 %)")
    ] = 1.0,
    y: Annotated[float, typer.Option("--y", help="Square-root law constant Y")] = 1.0,
    volume_share: Annotated[
        float, typer.Option(help="The venue's share of the data's aggregated daily volume")
    ] = 1.0,
    fund: Annotated[float, typer.Option(help="Insurance fund, USD")] = 1_000_000.0,
    policy: Annotated[
        str, typer.Option(help="Liquidation policy, e.g. full/queue, partial/pro_rata")
    ] = "full/queue",
    compare_policies: Annotated[bool, typer.Option(help="Run every liquidation policy on the shock")] = False,
    max_rounds: Annotated[int, typer.Option(help="Rounds per step at most")] = 50,
    cluster: Annotated[
        str | None, typer.Option(help="'local' (a LocalCluster) or a scheduler address")
    ] = None,
    shards: Annotated[int, typer.Option(help="Account shards (Dask: few and large)")] = 2,
    as_json: Annotated[bool, typer.Option("--json", help="Print the result as JSON")] = False,
    chart: Annotated[
        Path | None, typer.Option(help="Write a PNG chart (price, fund, liquidations per round)")
    ] = None,
) -> None:
    """Cascading liquidations: liquidations sell into square-root impact (daily volume and vol per
    asset from the shared data), impacted prices liquidate more, to a fixed point."""
    from crossmargin.adapters.history.stress_windows import market_depth
    from crossmargin.cli.stress_render import path_table, report_table, write_chart
    from crossmargin.core.stress.impact import MarketDepth, SquareRootImpact
    from crossmargin.engine.stress import (
        LocalShards,
        hypothetical_shock,
        policy_named,
        run_cascade,
        split_path,
    )
    from crossmargin.engine.stress import (
        compare_policies as run_all,
    )

    console = Console(stderr=True)
    try:
        if chart is not None:
            check_writable(chart, "--chart")
        check_usd(fund, "--fund")
        if not 0.0 < volume_share <= 1.0:  # a share of the aggregated volume, not a multiple of it
            raise InputError("--volume-share", f"must lie in (0, 1], got {volume_share!r}")
        venue, model = load_venue(book)
        moves = parse_moves(shock, name="--shock")
        label = ", ".join(f"{s} {m:+.0%}" for s, m in moves.items())
        path = split_path(hypothetical_shock(venue.book, label=label, moves=moves), steps)
        depth = {
            s: MarketDepth(
                daily_volume_usd=d.daily_volume_usd * volume_share, daily_volatility=d.daily_volatility
            )
            for s, d in market_depth().items()
        }
        impact = SquareRootImpact(depth=depth, y_coefficient=y, depth_multiplier=depth_multiplier)
        if compare_policies:
            results = run_all(venue, model, path, insurance_fund_usd=fund, impact=impact)
        else:
            chosen = policy_named(policy)
            with Progress(
                TextColumn("cascade"),
                BarColumn(),
                TextColumn("round {task.completed}"),
                console=console,
                transient=True,
                disable=as_json,
            ) as progress:
                task = progress.add_task("rounds", total=steps * max_rounds)

                def advance(done: int, total: int) -> None:
                    progress.update(task, completed=done)

                if cluster is None:
                    runner: Any = LocalShards.of(venue, model)
                    results = [
                        run_cascade(
                            runner,
                            venue,
                            path,
                            policy=chosen,
                            insurance_fund_usd=fund,
                            impact=impact,
                            max_rounds=max_rounds,
                            progress=advance,
                        )
                    ]
                else:
                    from crossmargin.adapters.dask import DaskShards, dask_client

                    with dask_client(cluster) as client:
                        runner = DaskShards.of(client, venue, model, n_shards=shards)
                        results = [
                            run_cascade(
                                runner,
                                venue,
                                path,
                                policy=chosen,
                                insurance_fund_usd=fund,
                                impact=impact,
                                max_rounds=max_rounds,
                                progress=advance,
                            )
                        ]
    except CrossMarginError as error:
        fail(error)
    if as_json:
        sys.stdout.write(json.dumps([r.summary() for r in results], indent=2) + "\n")
    else:
        out = Console(width=None if sys.stdout.isatty() else 200)
        if len(results) == 1:
            out.print(path_table(results[0]))
        out.print(
            report_table(
                results, title=f"cascade · {label} · depth x{depth_multiplier:g} · fund {fund:,.0f} USD"
            )
        )
    if chart is not None:
        try:
            write_chart(results, chart)
        except CrossMarginError as error:  # the charts extra (matplotlib) missing
            fail(error)
        except OSError as error:  # writable when checked, not now (a full disk, say)
            fail(cannot_write(chart, error, "--chart"))
        console.print(f"wrote {chart}")

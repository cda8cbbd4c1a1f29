"""What a command costs as the market widens: decisions on a venue with 0, 200 and 2,000 extra
marked perpetuals.

    python bench/bench_market_width.py [--widths 0,200,2000] [--repeats 5]

A command touches one or two accounts; what it reads of the market is the priced market of the
fold's prices and marks (`state.priced_market`), shared by every risk view between two price
moves. Finding it was O(the marked instruments) per view: its memo key is the prices and marks
themselves, built and compared on every call, and every command copied both dicts into its
sub-state. The fold now keeps them as read-only views (`state.frozen_prices`), shared by the
sub-states and found by identity.

Each venue is examples/desk.yaml with W perpetuals added to its book file (BTC-underlying,
linear, each with a mark of its own: W more marks), opened on the in-memory store. Timed, CPU of
one thread, best of --repeats: deciding a new order (`decide`), a withdrawal and a transfer
(`decide`, the generic path, beside the transfer lane's `withdraw_effects` and
`transfer_effects`: the same effects, the lane's baseline in the same run), and a fill between
two HEALTHY traders by the fill lane (`fill_lane.fill_effects`), each twice: on the fold as the
venue holds it (views, found by identity) and, the baseline in the same run, on the same fold
with its prices and marks as plain dicts (found by their values, as before this change).

The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
from pathlib import Path
from typing import Any

import yaml

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench_orders import best_us
from machine import compiled_kernels, cpu_model

BOOK = Path(__file__).resolve().parents[1] / "examples" / "desk.yaml"


def wide_book(width: int, directory: Path) -> Path:
    """examples/desk.yaml with `width` BTC-underlying linear perpetuals, each its own mark."""
    book = yaml.safe_load(BOOK.read_text())
    index = float(book["market"]["index_prices"]["BTC"])
    for k in range(width):
        book["instruments"].append(
            {
                "id": f"BTC-W{k:04d}-PERP",
                "kind": "perpetual",
                "underlying": "BTC",
                "contract_size": 1,
                "mark_price": round(index * (1.0 + 1e-5 * (k % 50)), 2),
                "margin": {
                    "tiers": [{"above_notional_usd": 0, "max_leverage": 50, "maintenance_rate": 0.01}]
                },
            }
        )
    path = directory / f"wide-{width}.yaml"
    path.write_text(yaml.safe_dump(book, sort_keys=False))
    return path


def width_run(width: int, repeats: int, directory: Path) -> dict[str, Any]:
    from crossmargin.adapters.clock import SystemClock
    from crossmargin.adapters.sql.runner import genesis_of_book
    from crossmargin.engine.memory import MemoryEventStore
    from crossmargin.engine.venue import Deposit, Fill, PlaceOrder, Transfer, Venue, VenueSettings, Withdraw
    from crossmargin.engine.venue.decide import decide
    from crossmargin.engine.venue.fill_lane import fill_effects
    from crossmargin.engine.venue.transfer_lane import transfer_effects, withdraw_effects

    venue = Venue.open(
        MemoryEventStore(),
        genesis_of_book(str(wide_book(width, directory))),
        clock=SystemClock(),
        settings=VenueSettings(snapshot_every=10**9),
    )
    try:
        for account in ("basis-trader", "vol-seller"):
            venue.execute(
                Deposit(idempotency_key=f"fund-{account}", account=account, asset="USDC", amount_units=10**13)
            )
        state, config = venue._state, venue.config
        now = state.time_ns + 1
        place = PlaceOrder(
            idempotency_key="p",
            account="basis-trader",
            order_id="n1",
            instrument="BTC-USDC-PERP",
            quantity=1,
            price=88_000.0,
        )
        withdraw = Withdraw(idempotency_key="w", account="basis-trader", asset="USDC", amount_units=10**6)
        fill = Fill(
            idempotency_key="f",
            taker="basis-trader",
            maker="vol-seller",
            instrument="BTC-USDC-PERP",
            quantity=1,
            price=88_500.0,
        )
        transfer = Transfer(
            idempotency_key="t",
            from_account="basis-trader",
            to_account="vol-seller",
            asset="USDC",
            amount_units=10**6,
        )
        if fill_effects(state, config, fill, now) is None:
            raise SystemExit("the bench's fill does not take the fill lane")
        if transfer_effects(state, config, transfer, now) != decide(state, config, transfer, now):
            raise SystemExit("the bench's transfer does not take the transfer lane, or differs")
        if withdraw_effects(state, config, withdraw, now) != decide(state, config, withdraw, now):
            raise SystemExit("the bench's withdrawal does not take the transfer lane, or differs")
        calls = {
            "place_order": lambda: decide(state, config, place, now),
            "withdraw": lambda: decide(state, config, withdraw, now),
            "withdraw_lane": lambda: withdraw_effects(state, config, withdraw, now),
            "transfer": lambda: decide(state, config, transfer, now),
            "transfer_lane": lambda: transfer_effects(state, config, transfer, now),
            "fill_lane": lambda: fill_effects(state, config, fill, now),
        }
        result: dict[str, Any] = {"width": width, "marks": len(state.marks)}
        views = (state.prices, state.marks)
        plain = (dict(state.prices), dict(state.marks))
        for name, call in calls.items():
            state.prices, state.marks = views
            by_identity = best_us(call, repeats)
            state.prices, state.marks = plain  # the baseline: found by value, as before
            by_value = best_us(call, repeats)
            state.prices, state.marks = views
            result[f"{name}_us"] = by_identity
            result[f"{name}_by_value_us"] = by_value
        return result
    finally:
        venue.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--widths", default="0,200,2000", help="extra marked perpetuals, comma-separated")
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args(argv)
    print(f"CROSSMARGIN_KERNEL={compiled_kernels()} (steady state: compiled kernels, bench/machine.py)")
    runs = []
    with tempfile.TemporaryDirectory() as tmp:
        for width in (int(w) for w in args.widths.split(",")):
            run = width_run(width, args.repeats, Path(tmp))
            runs.append(run)
            print(
                f"{run['marks']:5d} marks: new order {run['place_order_us']:6.0f} us (by value {run['place_order_by_value_us']:6.0f}), "
                f"withdrawal {run['withdraw_us']:6.0f} us (by value {run['withdraw_by_value_us']:6.0f}; "
                f"by the lane {run['withdraw_lane_us']:6.0f}), "
                f"transfer {run['transfer_us']:6.0f} us (by the lane {run['transfer_lane_us']:6.0f}), "
                f"fill by the lane {run['fill_lane_us']:6.0f} us (by value {run['fill_lane_by_value_us']:6.0f})"
            )
    print(json.dumps({"benchmark": "market_width", "runs": runs, "cpu": cpu_model()}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

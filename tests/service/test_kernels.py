"""The serving process's kernel policy (service/kernels.py): compiled from the start and warmed
before it is ready, so no request pays numba's start-up. Run in a child process under `auto`
(the test process runs compiled kernels, tests/conftest.py, and must keep its own budget)."""

from __future__ import annotations

from pathlib import Path

from tests.children import run_child
from tests.service.conftest import DESK

CHILD = """
import json, sys
from crossmargin.adapters.clock import SystemClock
from crossmargin.adapters.sql import SqlEventStore
from crossmargin.adapters.sql.runner import genesis_of_book
from crossmargin.core import jit
from crossmargin.core.margin.requirements import _book_kernel
from crossmargin.engine.venue import Venue
from crossmargin.service.kernels import settle_kernels

venue = Venue.open(SqlEventStore.connect(sys.argv[1]), genesis_of_book(sys.argv[2]), clock=SystemClock())
before = venue.state_digest(), venue.last_sequence
small_work_interpreted = jit.interpret(10)
seconds = settle_kernels(venue)
print(json.dumps({
    "small_work_interpreted_before": small_work_interpreted,
    "small_work_interpreted_after": jit.interpret(10),
    # The desk's whole book is small work: its pass runs the serial build (core.jit); a large
    # venue's warm-up compiles the parallel one the same way.
    "whole_book_kernel_compiled": _book_kernel.serial()._compiled is not None,
    "ledger_check_kernel_compiled": _book_kernel.serial()._compiled is not None,
    "unchanged": [venue.state_digest(), venue.last_sequence] == list(before),
    "seconds": seconds,
}))
venue.close()
"""


def test_serve_kernel_policy_compiles_and_warms_the_margin_cycle_before_ready(tmp_path: Path) -> None:
    seen = run_child(CHILD, f"sqlite:///{tmp_path / 'venue.db'}", str(DESK), kernel="auto", timeout_s=600)
    assert seen["small_work_interpreted_before"] is True  # `auto` as a one-shot command has it
    assert seen["small_work_interpreted_after"] is False
    assert seen["whole_book_kernel_compiled"] and seen["ledger_check_kernel_compiled"]
    assert seen["unchanged"]  # the warm-up margins, it moves nothing
    assert seen["seconds"] >= 0.0

"""The kernel policy of a long-lived service process (what `crossmargin serve` sets before it
reports ready).

Under the default `CROSSMARGIN_KERNEL=auto` a process interprets its kernels until about a second of
estimated work is done, then compiles (core.jit): right for a one-shot command, wrong for a server,
where the call that crosses the budget is some request, and it pays numba's import and the loading
(or, the first time after an install, the compiling) of every kernel it touches on that request's
clock. A server instead prefers compiled kernels from the start and runs its hot path once before
it takes traffic (`Venue.warm_up`): the cost moves to start-up, where readiness already waits for
the log's verification.

Process-wide, so only a process's owner calls it (the serve command); the library never does.
"""

from __future__ import annotations

import time

from crossmargin.core import jit
from crossmargin.engine.venue import Venue


def settle_kernels(venue: Venue) -> float:
    """Prefer compiled kernels for the rest of the process (`jit.prefer_compiled`; `python` mode
    still interprets), then warm the venue's margin cycle; returns the seconds the warm-up took."""
    jit.prefer_compiled()
    started = time.perf_counter()
    venue.warm_up()
    return time.perf_counter() - started

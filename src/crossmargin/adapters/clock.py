"""The wall clock: `engine.ports.Clock` over `time.time_ns` (the system's UTC clock)."""

from __future__ import annotations

import time
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class SystemClock:
    """Nanoseconds since the epoch from the operating system. Not monotonic across a clock
    adjustment (NTP): a live loop takes max(now, last) as the NATS oracle does."""

    def now_ns(self) -> int:
        return time.time_ns()

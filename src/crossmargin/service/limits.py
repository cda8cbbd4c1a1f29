"""Rate limits per key (429) and admission per request class (503): excess is refused, never queued.

Two separate questions, two answers:

- **Is this key asking too often?** A token bucket per key (`RateLimiter`): `rate_per_s` tokens a
  second up to `burst`; a request takes one or is refused with 429 and `Retry-After` (the seconds
  until a token is back). Limits depend on the role (`RateLimits`). The IETF draft
  "RateLimit header fields for HTTP" (draft-ietf-httpapi-ratelimit-headers) is the model for the
  headers; the bucket is the classic one (Turner, "New directions in communications", 1986).
- **Is the service as a whole full?** `Admission` counts requests in flight per class (reads,
  commands, heavy computations; `classify` from method and path). When a class is at its limit,
  a new request gets 503 and `Retry-After: 1` at once, from the outermost middleware, before any
  routing or authentication, instead of waiting in a queue: a queued request only adds latency to
  everybody behind it (Little's law), and the client can retry elsewhere or later. Commands have
  their own class, so a flood of reads cannot take the slots that ingestion needs. The read
  classes are sized to the cores (their work holds the interpreter lock): more threads would
  only take turns from the event loop that refuses the excess.

The clock is passed in (`time.monotonic` in the service), so tests drive the bucket exactly.
"""

from __future__ import annotations

import dataclasses
import enum
import math
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from crossmargin.core.checks import check_range
from crossmargin.errors import InputError
from crossmargin.service.keys import Role


@dataclass(frozen=True, slots=True, kw_only=True)
class Rate:
    """`rate_per_s` requests a second sustained, `burst` at once."""

    rate_per_s: float
    burst: int

    def __post_init__(self) -> None:
        check_range(self.rate_per_s, low=1e-9, high=1e9, name="rate_per_s")
        check_range(float(self.burst), low=1.0, high=1e9, name="burst")


@dataclass(frozen=True, slots=True, kw_only=True)
class RateLimits:
    """Per-key rates by role; `anonymous` applies per client address to requests without a valid
    key (so guessing keys is slow too)."""

    holder: Rate = Rate(rate_per_s=50.0, burst=100)
    risk: Rate = Rate(rate_per_s=5_000.0, burst=10_000)
    admin: Rate = Rate(rate_per_s=500.0, burst=1_000)
    anonymous: Rate = Rate(rate_per_s=10.0, burst=20)

    def of(self, role: Role | None) -> Rate:
        if role is None:
            return self.anonymous
        return {Role.HOLDER: self.holder, Role.RISK: self.risk, Role.ADMIN: self.admin}[role]


def with_overrides(limits: RateLimits, specs: Sequence[str], *, option: str = "--rate-limit") -> RateLimits:
    """`limits` with the roles `specs` name replaced, each spec `ROLE=PER_S` or `ROLE=PER_S/BURST`
    (burst defaults to two seconds' worth, as the defaults above); roles not named keep theirs.
    InputError naming `option` and the spec for an unknown role or a bad number."""
    roles = {"holder", "risk", "admin", "anonymous"}
    out = limits
    for spec in specs:
        role, _, value = spec.partition("=")
        role = role.strip().lower()
        if role not in roles or not value:
            raise InputError(option, f"{spec!r}: expected ROLE=PER_S[/BURST], ROLE one of {sorted(roles)}")
        per_s, _, burst = value.partition("/")
        try:
            rate_per_s = float(per_s)
            rate = Rate(rate_per_s=rate_per_s, burst=int(burst) if burst else max(int(2 * rate_per_s), 1))
        except (ValueError, OverflowError, InputError) as error:
            raise InputError(option, f"{spec!r}: {error}") from None
        out = dataclasses.replace(out, **{role: rate})
    return out


@dataclass(slots=True)
class _Bucket:
    tokens: float
    updated_s: float


class RateLimiter:
    """One token bucket per key id (or per client address for anonymous requests)."""

    def __init__(self, limits: RateLimits, clock_s: Callable[[], float]) -> None:
        self._limits = limits
        self._clock_s = clock_s
        self._buckets: dict[str, _Bucket] = {}
        self._lock = threading.Lock()

    def take(self, subject: str, role: Role | None) -> float:
        """Take a token for `subject`: 0.0 when granted, else the seconds until one is back."""
        rate = self._limits.of(role)
        now = self._clock_s()
        with self._lock:
            bucket = self._buckets.get(subject)
            if bucket is None:
                bucket = self._buckets[subject] = _Bucket(tokens=float(rate.burst), updated_s=now)
            bucket.tokens = min(float(rate.burst), bucket.tokens + (now - bucket.updated_s) * rate.rate_per_s)
            bucket.updated_s = now
            if bucket.tokens >= 1.0:
                bucket.tokens -= 1.0
                return 0.0
            return (1.0 - bucket.tokens) / rate.rate_per_s

    def limit_of(self, role: Role | None) -> Rate:
        return self._limits.of(role)


def retry_after_header(wait_s: float) -> str:
    """`Retry-After` in whole seconds (RFC 9110 §10.2.3), at least 1."""
    return str(max(1, math.ceil(wait_s)))


class RequestClass(enum.StrEnum):
    READ = "read"  # queries of stored state: accounts, prices, events
    COMPUTE = "compute"  # recomputations: margin under another model, what-if, explain, stress
    COMMAND = "command"  # anything that appends to the log
    STREAM = "stream"  # WebSocket streams open


@dataclass(frozen=True, slots=True, kw_only=True)
class AdmissionLimits:
    """Requests in flight per class before the next one gets 503."""

    read: int = 2  # account views are Python work under the interpreter lock: about one per core
    compute: int = 1  # margin under another model, what-if, explain: CPU-bound
    command: int = 4096  # commands wait on group commit, cheap to hold
    stream: int = 256  # each holds a worker thread while it waits for the next commit

    def of(self, request_class: RequestClass) -> int:
        return int(getattr(self, request_class.value))


class Admission:
    """Counts requests in flight per class; `try_enter` refuses instead of waiting."""

    def __init__(self, limits: AdmissionLimits) -> None:
        self._limits = limits
        self._in_flight = dict.fromkeys(RequestClass, 0)
        self._lock = threading.Lock()

    def try_enter(self, request_class: RequestClass) -> bool:
        with self._lock:
            if self._in_flight[request_class] >= self._limits.of(request_class):
                return False
            self._in_flight[request_class] += 1
            return True

    def leave(self, request_class: RequestClass) -> None:
        with self._lock:
            self._in_flight[request_class] -= 1

    def in_flight(self, request_class: RequestClass) -> int:
        return self._in_flight[request_class]


# Recomputations: margin under another model, what-if, explain, past margin, stress, previews.
_COMPUTE_SUFFIXES = ("/margin", "/margin-at", "/explain", "/what-if", "/risk-parameters/preview", "/stress")


def classify(method: str, path: str) -> RequestClass | None:
    """The class a request is admitted under, from its method and path alone (decided before any
    routing, parsing or authentication, so a refusal costs next to nothing); None for the
    operational endpoints (health, readiness, metrics, the OpenAPI document), never refused."""
    if not path.startswith("/v1/") or path == "/v1/stream":
        return None
    if path.endswith(_COMPUTE_SUFFIXES):
        return RequestClass.COMPUTE
    if method in ("GET", "HEAD"):
        return RequestClass.READ
    return RequestClass.COMMAND

"""Token buckets per key (429) and admission per request class (503), on a driven clock."""

from __future__ import annotations

import pytest

from crossmargin.errors import InputError
from crossmargin.service.keys import Role
from crossmargin.service.limits import (
    Admission,
    AdmissionLimits,
    Rate,
    RateLimiter,
    RateLimits,
    RequestClass,
    classify,
    retry_after_header,
    with_overrides,
)


class Clock:
    def __init__(self) -> None:
        self.now_s = 100.0

    def __call__(self) -> float:
        return self.now_s


def test_a_key_gets_its_burst_then_its_rate_and_no_more() -> None:
    clock = Clock()
    limiter = RateLimiter(RateLimits(holder=Rate(rate_per_s=10.0, burst=5)), clock)
    assert [limiter.take("k1", Role.HOLDER) for _ in range(5)] == [0.0] * 5
    wait_s = limiter.take("k1", Role.HOLDER)
    assert wait_s == pytest.approx(0.1)
    assert retry_after_header(wait_s) == "1"
    assert limiter.take("k2", Role.HOLDER) == 0.0  # another key has its own bucket
    clock.now_s += 0.25  # 2.5 tokens back
    assert [limiter.take("k1", Role.HOLDER) == 0.0 for _ in range(3)] == [True, True, False]
    clock.now_s += 60.0  # refills to the burst, not beyond
    assert sum(limiter.take("k1", Role.HOLDER) == 0.0 for _ in range(10)) == 5


def test_roles_have_their_own_rates() -> None:
    limits = RateLimits(holder=Rate(rate_per_s=1.0, burst=1), risk=Rate(rate_per_s=1.0, burst=3))
    limiter = RateLimiter(limits, Clock())
    assert sum(limiter.take("h", Role.HOLDER) == 0.0 for _ in range(5)) == 1
    assert sum(limiter.take("r", Role.RISK) == 0.0 for _ in range(5)) == 3
    assert sum(limiter.take("addr:1.2.3.4", None) == 0.0 for _ in range(50)) == RateLimits().anonymous.burst


def test_admission_refuses_at_the_limit_instead_of_queueing() -> None:
    admission = Admission(AdmissionLimits(read=2, compute=1))
    assert admission.try_enter(RequestClass.READ)
    assert admission.try_enter(RequestClass.READ)
    assert not admission.try_enter(RequestClass.READ)
    assert admission.try_enter(RequestClass.COMPUTE)  # classes are separate
    admission.leave(RequestClass.READ)
    assert admission.try_enter(RequestClass.READ)
    assert admission.in_flight(RequestClass.READ) == 2


@pytest.mark.parametrize(
    ("method", "path", "expected"),
    [
        ("GET", "/v1/accounts/alice", RequestClass.READ),
        ("GET", "/v1/events", RequestClass.READ),
        ("GET", "/v1/accounts/alice/margin", RequestClass.COMPUTE),
        ("POST", "/v1/accounts/alice/what-if", RequestClass.COMPUTE),
        ("POST", "/v1/stress", RequestClass.COMPUTE),
        ("POST", "/v1/accounts/alice/deposits", RequestClass.COMMAND),
        ("DELETE", "/v1/accounts/alice/orders/o1", RequestClass.COMMAND),
        ("POST", "/v1/prices", RequestClass.COMMAND),
        ("GET", "/healthz", None),
        ("GET", "/metrics", None),
        ("GET", "/openapi.json", None),
    ],
)
def test_requests_are_classified_before_routing(
    method: str, path: str, expected: RequestClass | None
) -> None:
    assert classify(method, path) == expected


def test_rate_limit_overrides_replace_only_the_roles_named() -> None:
    limits = with_overrides(RateLimits(), ["admin=20000/40000", "Holder=80"])
    assert limits.admin == Rate(rate_per_s=20_000.0, burst=40_000)
    assert limits.holder == Rate(rate_per_s=80.0, burst=160)  # burst: two seconds' worth
    assert (limits.risk, limits.anonymous) == (RateLimits().risk, RateLimits().anonymous)


@pytest.mark.parametrize(
    ("spec", "problem"),
    [
        ("root=10", "ROLE one of"),
        ("admin", "ROLE one of"),
        ("admin=fast", "could not convert"),
        ("admin=10/0", "burst"),
        ("admin=-5", "rate_per_s"),
        ("admin=inf", "OverflowError|infinity"),
    ],
)
def test_a_bad_rate_limit_is_refused_naming_the_option_and_the_spec(spec: str, problem: str) -> None:
    with pytest.raises(InputError, match=problem) as refused:
        with_overrides(RateLimits(), [spec])
    assert refused.value.field == "--rate-limit"
    assert repr(spec) in refused.value.problem

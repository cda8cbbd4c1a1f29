"""Fuzzing: schemathesis generates requests from the served OpenAPI document (valid and invalid
bodies, queries, paths) for every operation, sent with an admin key (every route open to it)
and with a holder key; no response may be a 5xx other than a documented 503, and every response
must match its documented schema. Bounded: `MAX_EXAMPLES` per operation, SQLite only (the HTTP
layer is the subject; the PostgreSQL store is exercised by the other service tests)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis.errors import Unsatisfiable
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import response_schema_conformance

from crossmargin.service.app import create_app
from crossmargin.service.limits import Rate, RateLimits
from tests.service.conftest import Database, Running, settings_for, start

MAX_EXAMPLES = 4
UNLIMITED = Rate(rate_per_s=1e6, burst=1_000_000)


@pytest.fixture(scope="module")
def fuzzed(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Running]:
    tmp_path: Path = tmp_path_factory.mktemp("fuzz")
    limits = RateLimits(holder=UNLIMITED, risk=UNLIMITED, admin=UNLIMITED, anonymous=UNLIMITED)
    yield from start(
        settings_for(Database(f"sqlite:///{tmp_path / 'venue.db'}"), tmp_path, rate_limits=limits)
    )


# schemathesis' own pytest plugin does not run under pytest 9 (it reads Function._nodeid), so
# the operations are driven here with hypothesis directly: one bounded run per operation, valid
# (positive) and invalid (negative) requests.
MODES = (schemathesis.GenerationMode.POSITIVE, schemathesis.GenerationMode.NEGATIVE)


CHECKS = [not_a_server_error, response_schema_conformance]


def fuzz(operation: Any, mode: schemathesis.GenerationMode, keys: tuple[str, ...]) -> None:
    """One bounded hypothesis run of one operation: valid requests with every key (the allowed
    and the refused paths), invalid ones with the first."""

    @given(case=operation.as_strategy(generation_mode=mode))
    @settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    def run(case: schemathesis.Case) -> None:
        for key in keys if mode == schemathesis.GenerationMode.POSITIVE else keys[:1]:
            response = case.call(headers={"Authorization": f"Bearer {key}"})
            if response.status_code == 503:  # documented (overloaded, draining); never here
                continue
            case.validate_response(response, checks=CHECKS)

    try:
        run()
    except Unsatisfiable:
        # nothing invalid to send: an operation without parameters or body (GET /healthz)
        assert mode == schemathesis.GenerationMode.NEGATIVE, operation.label


def test_fuzz_no_server_error_no_schema_violation(fuzzed: Running) -> None:
    schema = schemathesis.openapi.from_asgi("/openapi.json", create_app(fuzzed.context))
    keys = (fuzzed.admin, fuzzed.holder("basis-trader"))
    operations = [result.ok() for result in schema.get_all_operations()]
    assert len(operations) >= 20
    timings: dict[str, float] = {}
    for operation in operations:
        for mode in MODES:
            started = time.perf_counter()
            fuzz(operation, mode, keys)
            timings[f"{operation.label} {mode.value}"] = time.perf_counter() - started
    slowest = sorted(timings.items(), key=lambda item: -item[1])[:5]
    print("slowest operations:", ", ".join(f"{name} {seconds:.1f} s" for name, seconds in slowest))

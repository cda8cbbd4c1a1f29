"""Everything one app instance holds, in one value stored on `app.state` (no module globals)."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, cast

from fastapi import FastAPI

from crossmargin.service.keys import Verifier
from crossmargin.service.keystore import KeyStore
from crossmargin.service.limits import Admission, RateLimiter
from crossmargin.service.metrics import ServiceMetrics
from crossmargin.service.settings import ServiceSettings


@dataclass(slots=True)
class ServiceContext:
    """The venue behind the API and the service's own parts (keys, limits, metrics)."""

    settings: ServiceSettings
    venue: Any
    keys: KeyStore
    limiter: RateLimiter
    admission: Admission
    metrics: ServiceMetrics = field(default_factory=ServiceMetrics)
    verifier: Verifier = field(default_factory=Verifier)
    clock_ns: Callable[[], int] = time.time_ns
    draining: bool = False  # set at shutdown: /readyz says 503, new commands are refused


def context_of(app: FastAPI) -> ServiceContext:
    return cast(ServiceContext, app.state.context)

"""Prometheus metrics of one service instance, in a registry of its own (no global state).

    crossmargin_events_appended_total            counter   events appended to the log (rate() = events/s)
    crossmargin_margin_cycle_seconds             histogram one margin cycle (tick or event -> margins current)
    crossmargin_command_queue_depth              gauge     commands accepted, not yet committed
    crossmargin_accounts_below_maintenance       gauge     accounts whose equity is under MM
    crossmargin_log_sequence                     gauge     last committed sequence number
    crossmargin_http_requests_total              counter   by route template, method, status
    crossmargin_http_request_seconds             histogram by route template, method
    crossmargin_http_refused_total               counter   by reason: rate_limited (429), overloaded (503)
    crossmargin_websocket_clients                gauge     streams open

The gauges read the venue when scraped (`set_function`), so they are never stale. Exposition
format: https://prometheus.io/docs/instrumenting/exposition_formats/.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest

# Seconds. Margin cycles on the desk take ~0.1-5 ms, on a 1M-account book up to ~100 ms.
CYCLE_BUCKETS_S = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5)
HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServiceMetrics:
    """Every metric of one app; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.events_appended = Counter(
            "crossmargin_events_appended", "Events appended to the event log", registry=r
        )
        self.margin_cycle_seconds = Histogram(
            "crossmargin_margin_cycle_seconds",
            "Duration of one margin cycle (a tick or an event until margins are current)",
            buckets=CYCLE_BUCKETS_S,
            registry=r,
        )
        self.queue_depth = Gauge(
            "crossmargin_command_queue_depth", "Commands accepted and not yet committed", registry=r
        )
        self.accounts_below_maintenance = Gauge(
            "crossmargin_accounts_below_maintenance",
            "Accounts whose equity is below maintenance margin",
            registry=r,
        )
        self.log_sequence = Gauge(
            "crossmargin_log_sequence", "Last committed log sequence number", registry=r
        )
        self.http_requests = Counter(
            "crossmargin_http_requests", "HTTP requests", ["route", "method", "status"], registry=r
        )
        self.http_seconds = Histogram(
            "crossmargin_http_request_seconds",
            "HTTP request duration",
            ["route", "method"],
            buckets=HTTP_BUCKETS_S,
            registry=r,
        )
        self.http_refused = Counter(
            "crossmargin_http_refused", "Requests refused before any work", ["reason"], registry=r
        )
        self.websocket_clients = Gauge("crossmargin_websocket_clients", "WebSocket streams open", registry=r)

    def read_from(
        self,
        *,
        queue_depth: Callable[[], float],
        accounts_below_maintenance: Callable[[], float],
        log_sequence: Callable[[], float],
    ) -> None:
        """Make the gauges read the venue at scrape time."""
        self.queue_depth.set_function(queue_depth)
        self.accounts_below_maintenance.set_function(accounts_below_maintenance)
        self.log_sequence.set_function(log_sequence)

    def render(self) -> bytes:
        return generate_latest(self.registry)

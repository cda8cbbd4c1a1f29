"""Prometheus metrics of one service instance, in a registry of its own (no global state).

From the venue, read at scrape time (`VenueCollector` over `Venue.stats()`, so never stale):

    crossmargin_events_committed_total           counter   records appended to the log (rate() = events/s)
    crossmargin_commands_committed_total         counter   commands acknowledged
    crossmargin_commit_batches_total             counter   group commits (one fsync each)
    crossmargin_commands_rejected_total          counter   commands refused by the venue's rules
    crossmargin_command_queue_depth              gauge     commands accepted, not yet committed
    crossmargin_margin_cycle_last_seconds        gauge     the last price tick's margin cycle
    crossmargin_margin_cycle_seconds             summary   every margin cycle (when the venue counts them)
    crossmargin_accounts_below_maintenance       gauge     accounts whose equity is under MM
    crossmargin_log_sequence                     gauge     last committed sequence number
    crossmargin_idempotency_lookups_total        counter   keys looked up in the log (retries, and the
                                                           key filter's rare false positives)
    crossmargin_idempotency_keys_in_memory       gauge     committed keys the writer holds
    crossmargin_idempotency_filter_bytes         gauge     bytes of the filter of log keys not in memory
    crossmargin_log_audit_running                gauge     1 while the start-up audit verifies the log
                                                           before its snapshot (since_snapshot starts)
    crossmargin_log_audit_failed                 gauge     1 when that audit found a break (alert on it)
    crossmargin_log_audit_verified_through       gauge     the last record it has verified

From the service itself:

    crossmargin_http_requests_total              counter   by route template, method, status
    crossmargin_http_request_seconds             histogram by route template, method
    crossmargin_http_refused_total               counter   by reason: rate_limited (429), overloaded (503)
    crossmargin_websocket_clients                gauge     streams open

Exposition format: https://prometheus.io/docs/instrumenting/exposition_formats/.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric, SummaryMetricFamily
from prometheus_client.registry import Collector

HTTP_BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0)


class ServiceMetrics:
    """Every metric of one app; `render()` is the /metrics body."""

    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
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

    def read_from(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        """Report the venue's counters (`Venue.stats()`) at every scrape."""
        self.registry.register(VenueCollector(stats))

    def render(self) -> bytes:
        return generate_latest(self.registry)


class VenueCollector(Collector):
    """The venue's own counters as Prometheus metrics, read when scraped."""

    def __init__(self, stats: Callable[[], Mapping[str, Any]]) -> None:
        self._stats = stats

    def collect(self) -> Iterator[Metric]:
        stats = self._stats()
        for name, key, text in (
            ("crossmargin_events_committed", "records", "Records appended to the event log"),
            ("crossmargin_commands_committed", "commands", "Commands acknowledged after commit"),
            ("crossmargin_commit_batches", "batches", "Group commits (one transaction and fsync each)"),
            ("crossmargin_commands_rejected", "rejected", "Commands refused by the venue's rules"),
            (
                "crossmargin_idempotency_lookups",
                "key_lookups",
                "Idempotency keys looked up in the log (retries and the key filter's false positives)",
            ),
        ):
            yield CounterMetricFamily(name, text, value=float(stats.get(key, 0)))
        for name, key, text in (
            ("crossmargin_command_queue_depth", "queue_depth", "Commands accepted and not yet committed"),
            (
                "crossmargin_margin_cycle_last_seconds",
                "last_tick_s",
                "Duration of the last price tick's margin cycle",
            ),
            ("crossmargin_log_sequence", "last_sequence", "Last committed log sequence number"),
            ("crossmargin_idempotency_keys_in_memory", "keys_in_memory", "Committed keys the writer holds"),
            (
                "crossmargin_idempotency_filter_bytes",
                "key_filter_bytes",
                "Bytes of the filter of every idempotency key in the log (2.5 a key)",
            ),
            ("crossmargin_log_audit_running", "log_audit_running", "1 while the start-up audit runs"),
            ("crossmargin_log_audit_failed", "log_audit_failed", "1 when the start-up audit found a break"),
            (
                "crossmargin_log_audit_verified_through",
                "log_audit_verified_through",
                "The last log record the start-up audit has verified",
            ),
            (
                "crossmargin_accounts_below_maintenance",
                "accounts_under_maintenance",
                "Accounts whose equity is below maintenance margin (known after the first tick)",
            ),
        ):
            value = stats.get(key)
            if value is not None:
                yield GaugeMetricFamily(name, text, value=float(value))
        if "tick_seconds_sum" in stats and "ticks" in stats:
            yield SummaryMetricFamily(
                "crossmargin_margin_cycle_seconds",
                "Margin cycles (a price tick until margins, calls and liquidations are decided)",
                count_value=int(stats["ticks"]),
                sum_value=float(stats["tick_seconds_sum"]),
            )

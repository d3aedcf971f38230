"""Prometheus metrics, one registry per :class:`~bastion.runtime.Runtime` (never the global one:
tests run several gateways in one process).

The series every request updates are plain counts that the event loop (their only writer)
keeps in dicts, turned into metric families at scrape time; the rare ones are
prometheus_client's own.  Counts that already exist elsewhere (circuits, the settlement
writer) are read at scrape time by collectors instead of being counted twice.  Every label
value comes from a closed set (endpoint names, status codes, catalog model ids, error codes,
deployment names): nothing a client sends becomes a label.
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Callable, Iterable, Iterator, Mapping
from itertools import accumulate
from typing import Any, Protocol

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    PlatformCollector,
    ProcessCollector,
    disable_created_metrics,
    generate_latest,
)
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.utils import floatToGoString

from bastion import __version__

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"

LATENCY_BUCKETS = (
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    2.5,
    5.0,
    10.0,
    30.0,
    60.0,
    120.0,
    300.0,
    float("inf"),
)
OVERHEAD_BUCKETS = (
    0.0005,
    0.001,
    0.002,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1.0,
    float("inf"),
)
CIRCUIT_STATES = ("closed", "half_open", "open")
USAGE_UNITS = ("input_tokens", "output_tokens", "characters", "images", "audio_seconds")


# No ``*_created`` series: they would double the lines of every counter and histogram.
disable_created_metrics()  # type: ignore[no-untyped-call]


class SettlementCounters(Protocol):
    """What the settlement writer exposes (``SqlSettlementWriter``)."""

    batches: int
    charges_written: int
    logs_dropped: int
    voided: int
    failing: bool


class Metrics:
    """Every metric a gateway process exports; see docs/observability.md for the list."""

    def __init__(self) -> None:
        registry = CollectorRegistry(auto_describe=True)
        self.registry = registry
        # The per-request series are plain counts kept by the event loop, their only writer,
        # and exported at scrape time: prometheus_client's children take a lock per update and
        # scan the buckets in Python (12.8 µs a request for these, against 2.8 µs).
        self.requests = LoopCounter(
            "bastion_requests",
            "HTTP requests answered on the public listener, by endpoint, model and status.",
            ("endpoint", "model", "status"),
        )
        self.errors = LoopCounter(
            "bastion_errors",
            "Error answers by HTTP status and envelope code (429, 402 and 503 included).",
            ("status", "code"),
        )
        self.duration = LoopHistogram(
            "bastion_request_duration_seconds",
            "Time from the request's arrival to its last byte.",
            "endpoint",
            LATENCY_BUCKETS,
        )
        self.ttfb = LoopHistogram(
            "bastion_time_to_first_byte_seconds",
            "Time from the request's arrival to its response head (on streams: the first event).",
            "endpoint",
            LATENCY_BUCKETS,
        )
        self.upstream = LoopHistogram(
            "bastion_upstream_duration_seconds",
            "Time from admission to the upstream's complete answer (forwarding and relay).",
            "endpoint",
            LATENCY_BUCKETS,
        )
        self.overhead = LoopHistogram(
            "bastion_gateway_overhead_seconds",
            "Time the gateway itself added to a forwarded request: total minus upstream "
            "(parsing, authentication, admission, the durable charge, writes).",
            "endpoint",
            OVERHEAD_BUCKETS,
        )
        self.admission = LoopHistogram(
            "bastion_admission_duration_seconds",
            "Time a request spent in admission, admitted or refused there: limits and hold "
            "(scaled out, the limiter store's round trip).",
            "endpoint",
            OVERHEAD_BUCKETS,
        )
        self.commit = LoopHistogram(
            "bastion_charge_commit_seconds",
            "Time a charged request waited for its charge to be durable (the group commit to "
            "the store of record) before its last bytes left.",
            "endpoint",
            OVERHEAD_BUCKETS,
        )
        self.usage = LoopCounter(
            "bastion_usage",
            "Billed usage by model and unit (input_tokens, output_tokens, characters, images, "
            "audio_seconds).",
            ("model", "unit"),
        )
        self.charged = LoopCounter(
            "bastion_charged_micro_usd",
            "Credit charged (durably written to the ledger), in micro-USD, by model.",
            ("model",),
        )
        registry.register(
            _LoopCollector(
                [self.requests, self.errors, self.usage, self.charged],
                [
                    self.duration,
                    self.ttfb,
                    self.upstream,
                    self.overhead,
                    self.admission,
                    self.commit,
                ],
            )
        )
        self.active = 0
        """Requests being handled on the public listener (a plain int: no lock per request)."""
        self.in_flight = Gauge(
            "bastion_requests_in_flight",
            "Requests being handled on the public listener.",
            registry=registry,
        )
        self.in_flight.set_function(lambda: self.active)
        self.open_streams = Gauge(
            "bastion_open_streams",
            "Server-sent event streams open to clients.",
            ("endpoint",),
            registry=registry,
        )
        self.refusals = Counter(
            "bastion_admission_refusals",
            "Requests refused at admission, by reason (rate_limit, concurrency, spend_cap, "
            "insufficient_funds, store_unavailable).",
            ("reason",),
            registry=registry,
        )
        self.store_errors = Counter(
            "bastion_store_errors",
            "Failures of the limiter/admission store or the store of record, by store and "
            "operation.",
            ("store", "operation"),
            registry=registry,
        )
        self.protocol_errors = Counter(
            "bastion_http_protocol_errors",
            "Connections refused below HTTP (malformed requests, header and body deadlines).",
            ("reason",),
            registry=registry,
        )
        info = Gauge("bastion_build_info", "Bastion's version.", ("version",), registry=registry)
        info.labels(__version__).set(1)
        ProcessCollector(registry=registry)
        PlatformCollector(registry=registry)
        self._timings: dict[str, tuple[_Series, ...]] = {}
        self._streams: dict[str, Any] = {}
        self._refusals = {
            reason: self.refusals.labels(reason)
            for reason in (
                "rate_limit",
                "concurrency",
                "spend_cap",
                "insufficient_funds",
                "store_unavailable",
            )
        }

    # -- the hot path -----------------------------------------------------------------------

    def request_done(
        self,
        endpoint: str,
        model: str,
        status: int,
        total_s: float,
        ttfb_s: float | None,
        upstream_s: float | None,
        admit_s: float | None = None,
        commit_s: float | None = None,
    ) -> None:
        self.requests.inc((endpoint, model, status))
        timings = self._timings.get(endpoint)
        if timings is None:
            timings = self._timings[endpoint] = (
                self.duration.series(endpoint),
                self.ttfb.series(endpoint),
                self.upstream.series(endpoint),
                self.overhead.series(endpoint),
                self.admission.series(endpoint),
                self.commit.series(endpoint),
            )
        duration, ttfb, upstream, overhead, admission, commit = timings
        duration.observe(total_s)
        if ttfb_s is not None:
            ttfb.observe(ttfb_s)
        if upstream_s is not None:
            upstream.observe(upstream_s)
            overhead.observe(max(0.0, total_s - upstream_s))
        if admit_s is not None:
            admission.observe(admit_s)
        if commit_s is not None:
            commit.observe(commit_s)

    def error(self, status: int, code: str) -> None:
        self.errors.inc((status, code))

    def stream_opened(self, endpoint: str) -> Callable[[], None]:
        """Count an open stream; returns the function that counts it closed."""
        gauge = self._streams.get(endpoint)
        if gauge is None:
            gauge = self._streams[endpoint] = self.open_streams.labels(endpoint)
        gauge.inc()
        return gauge.dec

    def refused(self, reason: str) -> None:
        child = self._refusals.get(reason)
        if child is not None:
            child.inc()

    def store_error(self, store: str, operation: str) -> None:
        self.store_errors.labels(store, operation).inc()

    def charge(self, model: str, usage: Mapping[str, Any], cost_micros: int) -> None:
        """A charge that became durable."""
        if cost_micros:
            self.charged.inc((model,), cost_micros)
        for unit in USAGE_UNITS:
            value: Any = usage.get(unit)
            if type(value) in _NUMBERS and value > 0:  # exactly int or float: not a bool
                self.usage.inc((model, unit), value)

    def protocol_error(self, reason: str) -> None:
        self.protocol_errors.labels(reason).inc()

    # -- scrape-time collectors -------------------------------------------------------------

    def watch_circuits(self, snapshot: Callable[[], Mapping[str, Mapping[str, object]]]) -> None:
        self.registry.register(_CircuitCollector(snapshot))

    def watch_settlements(self, writer: Callable[[], SettlementCounters]) -> None:
        self.registry.register(_SettlementCollector(writer))

    def watch_reservations(self, used: Callable[[], int]) -> None:
        """Scaled out: requests admitted on a reservation, without a round trip to Redis."""
        self.registry.register(
            _CountCollector(
                "bastion_admissions_reserved",
                "Requests admitted on a reservation taken when the key's previous request "
                "ended (scaled out), without a round trip to Redis.",
                used,
            )
        )

    def exposition(self) -> bytes:
        return generate_latest(self.registry)


_NUMBERS = (int, float)


class LoopCounter:
    """A labelled counter the event loop alone updates: a dict of label values to totals."""

    __slots__ = ("documentation", "labels", "name", "totals")

    def __init__(self, name: str, documentation: str, labels: tuple[str, ...]) -> None:
        self.name = name
        self.documentation = documentation
        self.labels = labels
        self.totals: dict[tuple[object, ...], float] = {}

    def inc(self, key: tuple[object, ...], amount: float = 1) -> None:
        totals = self.totals
        totals[key] = totals.get(key, 0) + amount

    def family(self) -> CounterMetricFamily:
        family = CounterMetricFamily(self.name, self.documentation, labels=self.labels)
        for key, total in list(self.totals.items()):
            family.add_metric([str(value) for value in key], total)
        return family


class _Series:
    """One histogram series: a count per bucket (not cumulative) and the sum."""

    __slots__ = ("bounds", "counts", "total")

    def __init__(self, bounds: tuple[float, ...]) -> None:
        self.bounds = bounds
        self.counts = [0] * len(bounds)
        self.total = 0.0

    def observe(self, value: float) -> None:
        # the first bucket whose upper bound is >= value ("le"); +Inf catches the rest
        self.counts[bisect_left(self.bounds, value)] += 1
        self.total += value


class LoopHistogram:
    """A histogram by one label that the event loop alone updates."""

    __slots__ = ("bounds", "by_label", "documentation", "label", "name")

    def __init__(
        self, name: str, documentation: str, label: str, bounds: tuple[float, ...]
    ) -> None:
        self.name = name
        self.documentation = documentation
        self.label = label
        self.bounds = bounds
        self.by_label: dict[str, _Series] = {}

    def series(self, value: str) -> _Series:
        found = self.by_label.get(value)
        if found is None:
            found = self.by_label[value] = _Series(self.bounds)
        return found

    def family(self) -> HistogramMetricFamily:
        family = HistogramMetricFamily(self.name, self.documentation, labels=(self.label,))
        names = [floatToGoString(bound) for bound in self.bounds]  # type: ignore[no-untyped-call]
        for value, series in list(self.by_label.items()):
            cumulative = list(accumulate(series.counts))
            family.add_metric([value], list(zip(names, cumulative, strict=True)), series.total)
        return family


class _LoopCollector:
    """The event loop's counters and histograms, exported at scrape time."""

    def __init__(self, counters: list[LoopCounter], histograms: list[LoopHistogram]) -> None:
        self._counters = counters
        self._histograms = histograms

    def describe(self) -> Iterable[Metric]:
        return []  # unchecked collector, like the scrape-time ones below

    def collect(self) -> Iterator[Metric]:
        for counter in self._counters:
            yield counter.family()
        for histogram in self._histograms:
            yield histogram.family()


class _CircuitCollector:
    """Upstream deployment health from the passive-health circuits, read at scrape time."""

    def __init__(self, snapshot: Callable[[], Mapping[str, Mapping[str, object]]]) -> None:
        self._snapshot = snapshot

    def describe(self) -> Iterable[Metric]:
        return []  # unchecked collector: its series appear as deployments are first used

    def collect(self) -> Iterator[Metric]:
        state = GaugeMetricFamily(
            "bastion_upstream_circuit_state",
            "Circuit state of each upstream deployment (1 for the current state).",
            labels=("deployment", "state"),
        )
        up = GaugeMetricFamily(
            "bastion_upstream_up",
            "1 while a deployment's circuit lets requests through (closed or half-open).",
            labels=("deployment",),
        )
        consecutive = GaugeMetricFamily(
            "bastion_upstream_consecutive_failures",
            "Failures in a row of each deployment.",
            labels=("deployment",),
        )
        failures = CounterMetricFamily(
            "bastion_upstream_failures",
            "Failed attempts at each deployment (connect, timeout, 5xx, wrong type, redirect).",
            labels=("deployment",),
        )
        successes = CounterMetricFamily(
            "bastion_upstream_successes",
            "Attempts each deployment answered usably.",
            labels=("deployment",),
        )
        for name, circuit in self._snapshot().items():
            current = str(circuit.get("state"))
            for candidate in CIRCUIT_STATES:
                state.add_metric([name, candidate], 1.0 if candidate == current else 0.0)
            up.add_metric([name], 0.0 if current == "open" else 1.0)
            consecutive.add_metric([name], _number(circuit.get("consecutive_failures")))
            failures.add_metric([name], _number(circuit.get("failures")))
            successes.add_metric([name], _number(circuit.get("successes")))
        yield from (state, up, consecutive, failures, successes)


class _SettlementCollector:
    """The group-commit settlement writer's own counters, read at scrape time."""

    def __init__(self, writer: Callable[[], SettlementCounters]) -> None:
        self._writer = writer

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        writer = self._writer()
        yield CounterMetricFamily(
            "bastion_settlement_batches",
            "Group-commit transactions written.",
            value=writer.batches,
        )
        yield CounterMetricFamily(
            "bastion_settlement_charges_written",
            "Charges made durable by the settlement writer.",
            value=writer.charges_written,
        )
        yield CounterMetricFamily(
            "bastion_request_log_dropped",
            "Usage-history rows dropped because the queue was full (the ledger is unaffected).",
            value=writer.logs_dropped,
        )
        yield CounterMetricFamily(
            "bastion_settlement_charges_voided",
            "Charges refunded because their commit was unconfirmed when the client got 503.",
            value=writer.voided,
        )
        yield GaugeMetricFamily(
            "bastion_store_of_record_failing",
            "1 while the store of record refuses writes (admission answers 503 meanwhile).",
            value=1.0 if writer.failing else 0.0,
        )


class _CountCollector:
    """One counter kept by another object, read at scrape time."""

    def __init__(self, name: str, documentation: str, read: Callable[[], int]) -> None:
        self._name = name
        self._documentation = documentation
        self._read = read

    def describe(self) -> Iterable[Metric]:
        return []

    def collect(self) -> Iterator[Metric]:
        yield CounterMetricFamily(self._name, self._documentation, value=self._read())


def _number(value: object) -> float:
    return float(value) if isinstance(value, int | float) else 0.0

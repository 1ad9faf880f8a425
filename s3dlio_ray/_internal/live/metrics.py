"""Prometheus export of the driver's aggregated view, per node, operation and endpoint.

A custom collector renders the live totals at scrape time, so counters are exactly the driver's
cumulative sums (which never go backwards) and the latency histogram is the merged one, not an
average of percentiles. After the run the final values stay served for a linger period (when
anyone scraped during the run) and can be pushed to a Pushgateway, so the last numbers are kept.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import CollectorRegistry, make_wsgi_app, push_to_gateway
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    InfoMetricFamily,
)
from prometheus_client.registry import Collector

from s3dlio_ray._internal.live.listener import Listener, WsgiApp
from s3dlio_ray._internal.model.bottleneck import Bottleneck, PhaseBottleneck
from s3dlio_ray._internal.model.resources import NodeSecond
from s3dlio_ray._internal.model.results import ConfigEvent
from s3dlio_ray._internal.model.stats import (
    SUB_BUCKETS,
    LatencyHistogram,
    OpStats,
    bucket_upper_bound,
)
from s3dlio_ray._internal.model.utilization import UtilizationProgress

log = logging.getLogger(__name__)

PREFIX = "s3dlio_ray"
# Every power of two microseconds from 16 us to 268 s: 25 buckets, each an exact sum of the fine
# buckets below it.
LE_INDICES = [
    i for i in range(0, 1 + 40 * SUB_BUCKETS, SUB_BUCKETS) if 1.5e-5 < bucket_upper_bound(i) < 300
]


@dataclass
class MetricsView:
    """What the exporter reads; the driver keeps it current."""

    totals: Mapping[tuple[str, str], OpStats] = field(default_factory=dict)
    endpoints: Mapping[tuple[str, str, str], OpStats] = field(default_factory=dict)
    """Per (node, operation, endpoint): the counters and the latency histogram come from it."""
    operations: Mapping[tuple[str, str, str], OpStats] = field(default_factory=dict)
    """A mixed phase's per (node, phase, operation within it): its counters' `op` labels."""
    rates: Mapping[tuple[str, str], float] = field(default_factory=dict)
    concurrency: Callable[[], Mapping[str, tuple[int, int]]] = dict
    actors: Mapping[str, int] = field(default_factory=dict)
    training: Mapping[str, UtilizationProgress] = field(default_factory=dict)
    """A train phase's accelerators per node, cumulative."""
    au: Mapping[str, float] = field(default_factory=dict)
    """Each node's accelerator utilization over the last gathering interval."""
    events: Sequence[ConfigEvent] = ()
    """Settings changed while the run goes (`s3dlio-ray control`)."""
    targets: Callable[[], Mapping[str, float]] = dict
    """The throughput targets now, GB/s, by scope (actor: each actor's; cluster); 0: none."""
    paused: Callable[[], bool] = bool
    limits: Callable[[], PhaseBottleneck | None] = lambda: None
    """The running phase's limit verdicts (the last phase's, once it ended)."""
    resources: Callable[[], Mapping[str, NodeSecond]] = dict
    """Each node's latest second: its CPU, loop lag, NICs."""
    phase: Callable[[], str] = str
    """The phase the limit verdicts are of."""


def _counted(view: MetricsView) -> dict[tuple[str, str, str], OpStats]:
    """Per (node, op, endpoint): a mixed phase counted per operation within it (`op` get, put,
    stat, delete), under the one endpoint the node's phase used, or "all" when it used several
    (the engine counts operations per phase, endpoints per phase, not both)."""
    mixed = {(node, phase) for node, phase, _ in view.operations}
    counted = {key: stats for key, stats in view.endpoints.items() if key[:2] not in mixed}
    for (node, phase, op), stats in view.operations.items():
        used = [e for (n, p, e) in view.endpoints if (n, p) == (node, phase)]
        key = (node, op, used[0] if len(used) == 1 else "all")
        total = counted[key].copy() if key in counted else OpStats()
        total.merge(stats)
        counted[key] = total
    return counted


def histogram_buckets(hist: LatencyHistogram) -> list[tuple[str, float]]:
    """Cumulative (le, count) pairs for Prometheus from the fine log buckets."""
    buckets: list[tuple[str, float]] = []
    cumulative, index = 0, 0
    for le_index in LE_INDICES:
        while index <= le_index:
            cumulative += hist.counts[index]
            index += 1
        buckets.append((f"{bucket_upper_bound(le_index):.9g}", cumulative))
    buckets.append(("+Inf", hist.count))
    return buckets


class RunCollector(Collector):
    def __init__(self, view: MetricsView, run_info: Mapping[str, str]) -> None:
        self.view = view
        self.run_info = dict(run_info)
        self.scrapes = 0

    def collect(self) -> Iterator:
        self.scrapes += 1
        view = self.view
        labels = ["node", "op", "endpoint"]
        families = {
            "bytes": CounterMetricFamily(f"{PREFIX}_bytes", "Bytes transferred", labels=labels),
            "ops": CounterMetricFamily(
                f"{PREFIX}_operations", "Object operations completed", labels=labels
            ),
            "errors": CounterMetricFamily(
                f"{PREFIX}_errors", "Object operations that failed", labels=labels
            ),
            "retries": CounterMetricFamily(f"{PREFIX}_retries", "Requests retried", labels=labels),
        }
        latency: dict[tuple[str, str], LatencyHistogram] = {}
        for (node, op, endpoint), stats in sorted(_counted(view).items()):
            families["bytes"].add_metric([node, op, endpoint], stats.bytes)
            families["ops"].add_metric([node, op, endpoint], stats.ops)
            families["errors"].add_metric([node, op, endpoint], stats.errors)
            families["retries"].add_metric([node, op, endpoint], stats.retries)
            latency.setdefault((op, endpoint), LatencyHistogram()).merge(stats.latency)
        yield from families.values()
        throughput = GaugeMetricFamily(
            f"{PREFIX}_throughput_bytes_per_second",
            "Bytes per second over the last gathering interval",
            labels=["node", "op"],
        )
        for node, op in sorted(view.totals):
            throughput.add_metric([node, op], view.rates.get((node, op), 0.0))
        yield throughput
        limit = GaugeMetricFamily(
            f"{PREFIX}_concurrency_limit", "In-flight request limit", labels=["node"]
        )
        in_flight = GaugeMetricFamily(
            f"{PREFIX}_inflight_requests", "Requests in flight", labels=["node"]
        )
        for node, (node_limit, node_in_flight) in sorted(view.concurrency().items()):
            limit.add_metric([node], node_limit)
            in_flight.add_metric([node], node_in_flight)
        yield limit
        yield in_flight
        actors = GaugeMetricFamily(f"{PREFIX}_actors", "Transfer actors", labels=["node"])
        for node, count in sorted(view.actors.items()):
            actors.add_metric([node], count)
        yield actors
        yield from _training(view)
        histogram = HistogramMetricFamily(
            f"{PREFIX}_request_latency_seconds",
            "Object operation latency",
            labels=["op", "endpoint"],
        )
        for (op, endpoint), hist in sorted(latency.items()):
            histogram.add_metric([op, endpoint], histogram_buckets(hist), sum_value=hist.total_s)
        yield histogram
        yield from _changes(view)
        yield from _resources(view)
        yield from _limits(view)
        info = InfoMetricFamily(f"{PREFIX}_run", "The run: id, workload, configuration")
        info.add_metric([], self.run_info)
        yield info


def _changes(view: MetricsView) -> Iterator:
    """Settings changed while the run goes, and what the targets and pause are now."""
    changes = CounterMetricFamily(
        f"{PREFIX}_config_changes", "Settings changed while the run went (s3dlio-ray control)"
    )
    changes.add_metric([], len(view.events))
    targets = GaugeMetricFamily(
        f"{PREFIX}_target_gbps",
        "The throughput target now, GB/s (scope actor: each actor's; cluster: the whole's); 0: "
        "none set",
        labels=["scope"],
    )
    for scope, gbps in sorted(view.targets().items()):
        targets.add_metric([scope], gbps)
    paused = GaugeMetricFamily(f"{PREFIX}_paused", "1 while the run is paused")
    paused.add_metric([], 1.0 if view.paused() else 0.0)
    yield from (changes, targets, paused)


def _resources(view: MetricsView) -> Iterator:
    """Each node's own resources over its latest second: what the limit verdicts read."""
    gauges = {
        "actors_cpu": ("client_cpu_cores", "Cores the node's actors used, last interval"),
        "capacity_cores": ("client_cpu_capacity_cores", "Cores the actors may use (quota)"),
        "node_cpu": ("node_cpu_ratio", "Share of the node's CPU busy, every process (0..1)"),
        "loop_lag_s": ("loop_lag_seconds", "How late the actors' event loops woke, mean"),
        "ttfb_p50_s": ("ttfb_p50_seconds", "Median time to first byte, last interval"),
    }
    families = {
        name: GaugeMetricFamily(f"{PREFIX}_{metric}", text, labels=["node"])
        for name, (metric, text) in gauges.items()
    }
    nic_rate = GaugeMetricFamily(
        f"{PREFIX}_nic_bits_per_second",
        "Bits per second through a NIC the actors use, each way, last interval",
        labels=["node", "nic", "direction"],
    )
    nic_speed = GaugeMetricFamily(
        f"{PREFIX}_nic_speed_bits_per_second",
        "The NIC's speed (the kernel's, or nic_gbps)",
        labels=["node", "nic"],
    )
    nic_use = GaugeMetricFamily(
        f"{PREFIX}_nic_utilization",
        "The NIC's busier direction over its speed, last interval (0..1)",
        labels=["node", "nic"],
    )
    for node, second in sorted(view.resources().items()):
        for name, family in families.items():
            value = getattr(second, name)
            if value is not None:
                family.add_metric([node], value)
        for nic in second.nics:
            nic_rate.add_metric([node, nic.name, "rx"], nic.rx_bps)
            nic_rate.add_metric([node, nic.name, "tx"], nic.tx_bps)
            if nic.speed_bps:
                nic_speed.add_metric([node, nic.name], nic.speed_bps)
                nic_use.add_metric([node, nic.name], nic.utilization or 0.0)
    yield from (*families.values(), nic_rate, nic_speed, nic_use)


def _limits(view: MetricsView) -> Iterator:
    """The limit verdict per node and for the cluster: 1 for its kind, with the figures that
    show it."""
    labels = ["phase", "kind", "where"]
    kinds = "client-cpu, client-network, server, throttled, target, rate-limit or unclear"
    limit = GaugeMetricFamily(
        f"{PREFIX}_limit", f"1 for what limits the node: {kinds}", labels=["node", *labels]
    )
    cluster = GaugeMetricFamily(
        f"{PREFIX}_cluster_limit", f"1 for what limits the cluster: {kinds}", labels=labels
    )
    text = "The figures a limit verdict read (shares 0..1, ms, Gb/s, counts)"
    evidence = GaugeMetricFamily(
        f"{PREFIX}_limit_evidence", text, labels=["node", "phase", "kind", "figure"]
    )
    cluster_evidence = GaugeMetricFamily(
        f"{PREFIX}_cluster_limit_evidence", text, labels=["phase", "kind", "figure"]
    )
    verdicts, phase = view.limits(), view.phase()
    if verdicts is not None:
        named: list[tuple[tuple[str, ...], Bottleneck, GaugeMetricFamily, GaugeMetricFamily]]
        named = [((node,), verdict, limit, evidence) for node, verdict in verdicts.nodes.items()]
        named.append(((), verdicts.cluster, cluster, cluster_evidence))
        for node, verdict, family, figures in named:
            kind = str(verdict.kind)
            family.add_metric([*node, phase, kind, verdict.where], 1.0)
            for figure, value in sorted(verdict.evidence.items()):
                if isinstance(value, int | float):
                    figures.add_metric([*node, phase, kind, figure], float(value))
    yield from (limit, cluster, evidence, cluster_evidence)


def _training(view: MetricsView) -> Iterator:
    """A train phase's simulated accelerators per node: utilization, samples, epoch."""
    au = GaugeMetricFamily(
        f"{PREFIX}_accelerator_utilization",
        "Compute time over wall time of the node's simulated accelerators, last interval (0..1)",
        labels=["node"],
    )
    samples = CounterMetricFamily(
        f"{PREFIX}_samples", "Samples the simulated accelerators computed on", labels=["node"]
    )
    epoch = GaugeMetricFamily(
        f"{PREFIX}_epoch",
        "The training epoch the node's accelerators are in (from 1)",
        labels=["node"],
    )
    for node, progress in sorted(view.training.items()):
        samples.add_metric([node], progress.samples)
        epoch.add_metric([node], progress.epoch)
    for node, value in sorted(view.au.items()):
        au.add_metric([node], value)
    yield from (au, samples, epoch)


class MetricsExporter:
    """Serves /metrics on host:port for the run, then lingers and pushes the final values."""

    def __init__(
        self,
        view: MetricsView,
        run_info: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        linger_s: float = 30.0,
        pushgateway_url: str | None = None,
        routes: Mapping[str, WsgiApp] | None = None,
    ) -> None:
        self.registry = CollectorRegistry()
        self.collector = RunCollector(view, run_info)
        self.registry.register(self.collector)
        self._host, self._port = host, port
        self._linger_s = linger_s
        self._pushgateway = pushgateway_url
        self._routes = {**(routes or {}), "/metrics": make_wsgi_app(self.registry)}
        self._listener: Listener | None = None

    @property
    def port(self) -> int | None:
        """Where /metrics is served; None when it could not be."""
        return self._listener.port if self._listener else None

    def start(self) -> MetricsExporter:
        """Serve /metrics (and the other routes); a port that cannot be had is a warning and the
        run goes on without."""
        try:
            self._listener = Listener(self._host, self._port, self._routes)
        except OSError as exc:
            log.warning(
                "metrics: cannot serve on %s:%s (%s); the run goes on without /metrics (choose "
                "another metrics_port, 0 for any free port)",
                self._host,
                self._port,
                exc.strerror or exc,
            )
        return self

    def finish(self) -> None:
        """Push the final values if a Pushgateway is set; linger if anyone was scraping.

        A push that fails is a warning: the metrics are a side channel, the result files are not.
        """
        scraped = self.collector.scrapes > 0
        if self._pushgateway:
            try:
                push_to_gateway(self._pushgateway, job="s3dlio-ray", registry=self.registry)
            except OSError as exc:
                log.warning(
                    "metrics: cannot push the final values to %s (%s); the result files have them",
                    self._pushgateway,
                    getattr(exc, "reason", None) or exc,
                )
        if scraped and self._linger_s > 0:
            time.sleep(self._linger_s)
        self.stop()

    def stop(self) -> None:
        if self._listener is not None:
            self._listener.stop()
            self._listener = None

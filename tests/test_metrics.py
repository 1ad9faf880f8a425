"""Prometheus export: cumulative buckets from the fine histogram, per-node series on loopback."""

import urllib.request

from conftest import recorded
from prometheus_client.parser import text_string_to_metric_families

from s3dlio_ray._internal.live.metrics import MetricsExporter, MetricsView, histogram_buckets
from s3dlio_ray._internal.model.stats import LatencyHistogram


def test_prometheus_buckets_are_cumulative_and_end_with_the_count():
    hist = LatencyHistogram()
    for v in (0.0001, 0.003, 0.003, 0.2, 1000.0):
        hist.record(v)
    buckets = histogram_buckets(hist)
    counts = [c for _, c in buckets]
    assert counts == sorted(counts)
    assert buckets[-1] == ("+Inf", 5)
    le = dict(buckets)
    assert le["0.004096"] == 3  # 0.0001 and both 0.003 are at or below 2^12 us
    assert counts[-2] == 4  # 1000 s is above the largest finite bucket


def test_exporter_serves_per_node_series_on_loopback():
    view = MetricsView(
        totals={("n1", "put"): recorded(3, 300), ("n2", "put"): recorded(1, 100)},
        endpoints={
            ("n1", "put", "http://a:9000"): recorded(2, 200),
            ("n1", "put", "http://b:9000"): recorded(1, 100),
            ("n2", "put", "http://a:9000"): recorded(1, 100),
        },
        rates={("n1", "put"): 1e9},
        concurrency=lambda: {"n1": (16, 5)},
        actors={"n1": 2, "n2": 2},
    )
    exporter = MetricsExporter(
        view, {"run_id": "r1", "workload": "quick"}, port=0, linger_s=0
    ).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics") as response:
            text = response.read().decode()
    finally:
        exporter.finish()
    samples = {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }
    a, b = (("endpoint", "http://a:9000"),), (("endpoint", "http://b:9000"),)
    assert samples[("s3dlio_ray_bytes_total", (*a, ("node", "n1"), ("op", "put")))] == 200
    assert samples[("s3dlio_ray_bytes_total", (*b, ("node", "n1"), ("op", "put")))] == 100
    assert samples[("s3dlio_ray_operations_total", (*a, ("node", "n2"), ("op", "put")))] == 1
    assert (
        samples[("s3dlio_ray_throughput_bytes_per_second", (("node", "n1"), ("op", "put")))] == 1e9
    )
    assert samples[("s3dlio_ray_inflight_requests", (("node", "n1"),))] == 5
    assert samples[("s3dlio_ray_request_latency_seconds_count", (*a, ("op", "put")))] == 3
    assert samples[("s3dlio_ray_request_latency_seconds_count", (*b, ("op", "put")))] == 1
    assert samples[("s3dlio_ray_run_info", (("run_id", "r1"), ("workload", "quick")))] == 1
    assert "secret" not in text.lower()


def test_a_mixed_phase_is_counted_per_operation_within_it():
    view = MetricsView(
        totals={("n1", "mixed"): recorded(4, 400), ("n1", "put"): recorded(2, 200)},
        endpoints={
            ("n1", "mixed", "http://a:9000"): recorded(4, 400),
            ("n1", "put", "http://a:9000"): recorded(2, 200),
        },
        operations={
            ("n1", "mixed", "get"): recorded(3, 300),
            ("n1", "mixed", "put"): recorded(1, 100),
        },
    )
    exporter = MetricsExporter(view, {"run_id": "r1"}, port=0, linger_s=0).start()
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{exporter.port}/metrics") as response:
            text = response.read().decode()
    finally:
        exporter.finish()
    counted = {
        s.labels["op"]: s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.name == "s3dlio_ray_operations_total"
    }
    assert counted == {"get": 3, "put": 2 + 1}, "a put is a put, in a put phase or a mixed one"

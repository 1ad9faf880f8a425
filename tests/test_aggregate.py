"""Pure logic of the Ray layer: sharding, placement, live totals, merging, metric buckets."""

import urllib.request

import pytest
from prometheus_client.parser import text_string_to_metric_families

from s3dlio_ray.cluster.aggregate import ActorPhaseResult, LiveTotals, by_node, merge_phase
from s3dlio_ray.cluster.driver import node_labels, plan_slots
from s3dlio_ray.cluster.sharding import shard
from s3dlio_ray.engine import EngineSnapshot, PhaseResult
from s3dlio_ray.metrics import MetricsExporter, MetricsView, histogram_buckets
from s3dlio_ray.stats import LatencyHistogram, OpStats


@pytest.mark.parametrize(("count", "parts"), [(0, 3), (1, 3), (10, 3), (100, 7), (5, 5)])
def test_shards_cover_every_key_exactly_once(count, parts):
    keys = [f"k{i}" for i in range(count)]
    shares = shard(keys, parts)
    assert len(shares) == parts
    assert [k for share in shares for k in share] == keys
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def node(node_id, ip, cpus, alive=True):
    return {"NodeID": node_id, "NodeManagerAddress": ip, "Alive": alive, "Resources": {"CPU": cpus}}


def test_labels_are_ips_made_unique_when_they_repeat():
    labels = node_labels(
        [
            node("aaaaaaaa", "10.0.0.1", 2),
            node("bbbbbbbb", "127.0.0.1", 1),
            node("cccccccc", "127.0.0.1", 1),
        ]
    )
    assert labels == {
        "aaaaaaaa": "10.0.0.1",
        "bbbbbbbb": "127.0.0.1-bbbbbb",
        "cccccccc": "127.0.0.1-cccccc",
    }


def test_slots_one_actor_per_cpu_on_alive_nodes():
    nodes = [
        node("a", "10.0.0.1", 4),
        node("b", "10.0.0.2", 2),
        node("c", "10.0.0.3", 8, False),
        node("d", "10.0.0.4", 0),
    ]
    slots = plan_slots(nodes, None)
    assert [(s.label, s.cpus, s.actors, s.cpus_each) for s in slots] == [
        ("10.0.0.1", 4, 4, 1.0),
        ("10.0.0.2", 2, 2, 1.0),
    ]
    slots = plan_slots(nodes, 8)
    assert [(s.actors, s.cpus_each) for s in slots] == [(8, 0.5), (8, 0.25)]


def stats(ops, nbytes, latency=0.01):
    s = OpStats()
    for _ in range(ops):
        s.record(nbytes // max(ops, 1), latency)
    return s


def test_live_totals_add_only_what_is_new_and_never_go_back():
    totals = LiveTotals()
    totals.observe(1, "n1", EngineSnapshot("put", stats(2, 200), 8, 3))
    totals.observe(1, "n1", EngineSnapshot("put", stats(5, 500), 8, 4))
    totals.observe(1, "n1", EngineSnapshot("put", stats(3, 300), 8, 4))  # late, stale reply
    assert totals.totals[("n1", "put")].ops == 5
    assert totals.concurrency() == {"n1": (8, 4)}
    totals.finish(1, "n1", "put", stats(7, 700))
    totals.observe(1, "n1", EngineSnapshot("put", stats(6, 600), 8, 1))  # after finish: ignored
    assert totals.totals[("n1", "put")].ops == 7
    assert totals.totals[("n1", "put")].latency.count == 7
    totals.observe(2, "n2", EngineSnapshot("put", stats(4, 400), 8, 8))
    totals.abandon(2)  # its actor died: what it did stays counted
    totals.observe(3, "n1", EngineSnapshot("put", stats(1, 100), 8, 1))  # the share, redone
    assert totals.totals[("n2", "put")].ops == 4
    assert totals.totals[("n1", "put")].ops == 8
    assert "n2" not in totals.concurrency()


def test_merge_adds_counts_and_histograms_exactly():
    parts = [
        ActorPhaseResult(
            "a/0",
            "a",
            PhaseResult(
                "get",
                1.0,
                stats(3, 300, 0.01),
                verified=3,
                start_concurrency=8,
                final_concurrency=12,
            ),
        ),
        ActorPhaseResult(
            "a/1",
            "a",
            PhaseResult(
                "get",
                1.2,
                stats(2, 200, 0.5),
                verified=2,
                failed={"k": "boom"},
                start_concurrency=8,
                final_concurrency=8,
            ),
        ),
        ActorPhaseResult("b/0", "b", PhaseResult("get", 0.9, stats(5, 500, 0.02), verified=5)),
    ]
    merged = merge_phase("get", 1.5, [p.result for p in parts])
    assert (merged.stats.ops, merged.stats.bytes, merged.verified) == (10, 1000, 10)
    assert merged.failed == {"k": "boom"}
    assert (merged.start_concurrency, merged.final_concurrency) == (16, 20)
    assert merged.stats.latency.percentile(1.0) == 0.5
    nodes = by_node(parts)
    assert {n: s.bytes for n, s in nodes.items()} == {"a": 500, "b": 500}
    assert sum(s.latency.count for s in nodes.values()) == merged.stats.latency.count


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
        totals={("n1", "put"): stats(3, 300), ("n2", "put"): stats(1, 100)},
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
    assert samples[("s3dlio_ray_bytes_total", (("node", "n1"), ("op", "put")))] == 300
    assert samples[("s3dlio_ray_operations_total", (("node", "n2"), ("op", "put")))] == 1
    assert (
        samples[("s3dlio_ray_throughput_bytes_per_second", (("node", "n1"), ("op", "put")))] == 1e9
    )
    assert samples[("s3dlio_ray_inflight_requests", (("node", "n1"),))] == 5
    assert samples[("s3dlio_ray_request_latency_seconds_count", (("op", "put"),))] == 4
    assert samples[("s3dlio_ray_run_info", (("run_id", "r1"), ("workload", "quick")))] == 1
    assert "secret" not in text.lower()

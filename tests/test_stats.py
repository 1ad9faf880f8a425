import random

from s3dlio_ray._internal.model.stats import LatencyHistogram, OpStats


def test_percentiles_within_bucket_precision():
    rng = random.Random(7)
    values = [rng.uniform(0.001, 0.5) for _ in range(10_000)]
    hist = LatencyHistogram()
    for v in values:
        hist.record(v)
    ordered = sorted(values)
    for q in (0.5, 0.9, 0.99):
        exact = ordered[int(q * len(ordered)) - 1]
        assert abs(hist.percentile(q) - exact) / exact < 0.1
    assert hist.max_s == max(values)
    assert hist.percentile(1.0) == max(values)


def test_merge_equals_recording_everything_in_one():
    rng = random.Random(3)
    a, b, whole = OpStats(), OpStats(), OpStats()
    for i in range(2000):
        latency = rng.expovariate(50)
        target = a if i % 3 else b
        target.record(1024, latency, latency / 2)
        whole.record(1024, latency, latency / 2)
    a.errors, b.retries = 2, 5
    a.merge(b)
    assert a.ops == whole.ops and a.bytes == whole.bytes
    assert a.latency.counts == whole.latency.counts
    assert a.latency.percentile(0.99) == whole.latency.percentile(0.99)
    assert a.ttfb.percentile(0.5) == whole.ttfb.percentile(0.5)
    assert (a.errors, a.retries) == (2, 5)


def test_round_trip_through_dict():
    stats = OpStats()
    for v in (0.01, 0.02, 0.5):
        stats.record(10, v)
    again = OpStats.from_dict(stats.to_dict())
    assert again.latency.counts == stats.latency.counts
    assert again.latency.summary() == stats.latency.summary()


def test_empty_histogram_reports_zero():
    assert LatencyHistogram().percentile(0.99) == 0.0
    assert LatencyHistogram().summary()["max_s"] == 0.0


def test_a_copy_is_equal_and_independent():
    """Snapshots of live statistics are copies: what the engine records next must not change
    the snapshot the driver holds, nor the other way round."""
    live = OpStats()
    for i in range(100):
        live.record(4096, 0.001 * (i % 7 + 1), 0.0002)
    snapshot = live.copy()
    assert snapshot == live
    live.record(1, 0.5, 0.1)
    snapshot.merge(snapshot)
    assert live.ops == 101 and snapshot.ops == 200
    assert live.latency.counts != snapshot.latency.counts
    assert sum(live.latency.counts) == 101 and sum(live.ttfb.counts) == 101

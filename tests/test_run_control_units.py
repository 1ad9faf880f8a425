"""Run control as pure logic: rate limits and their pacer, autoterm's steadiness, timed-PUT keys."""

import itertools
import random

import pytest

from s3dlio_ray._internal.execution.phases.step import is_timed
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import KeyRange, Span
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.tuning.autoterm import SteadyDetector, steadiness_rate
from s3dlio_ray._internal.tuning.pacing import Pacer, RateLimit


@pytest.mark.parametrize(
    ("text", "unit", "per_s"),
    [
        ("500 ops/s", "ops", 500),
        ("1.5 GB/s", "bytes", 1.5e9),
        ("200MiB/s", "bytes", 200 * 2**20),
        ("10 kb/s", "bytes", 10_000),
    ],
)
def test_rate_limits_read_ops_or_bytes(text, unit, per_s):
    assert RateLimit.parse(text) == RateLimit(unit, per_s)


@pytest.mark.parametrize("text", ["fast", "500", "0 ops/s", "5 GB"])
def test_a_bad_rate_limit_is_refused_in_one_line(text):
    with pytest.raises(ConfigError, match=r"rate_limit: (expected a rate|a rate limit must)"):
        load_settings(overrides={"rate_limit": text}, environ={})


def test_a_cluster_cap_is_shared_evenly():
    assert RateLimit("ops", 300).share(3) == RateLimit("ops", 100)


def simulate_pacer(pacer: Pacer, costs: list[int]) -> float:
    """Start each operation as soon as the pacer allows; the time the last one starts."""
    now = 0.0
    for cost in costs:
        now += pacer.delay(cost, now)
    return now


def test_the_pacer_spaces_operations_at_the_rate():
    assert simulate_pacer(Pacer(RateLimit("ops", 100), burst_s=0), [1] * 501) == pytest.approx(5.0)


def test_the_pacer_counts_bytes_for_a_byte_cap():
    costs = [random.Random(i).randrange(1, 2_000_000) for i in range(200)]
    end = simulate_pacer(Pacer(RateLimit("bytes", 1e8), burst_s=0), [*costs, 0])
    assert end == pytest.approx(sum(costs) / 1e8)


def test_idle_time_earns_only_a_small_burst():
    pacer = Pacer(RateLimit("ops", 10), burst_s=0.2)
    assert pacer.delay(1, 0.0) == 0
    # Ten idle seconds later the one due now and two more (0.2 s of credit) go at once; the
    # fourth waits its turn.
    assert [pacer.delay(1, 10.0) for _ in range(4)] == pytest.approx([0.0, 0.0, 0.0, 0.1])


def test_a_level_noisy_throughput_is_steady_after_the_window():
    detector = SteadyDetector(window_s=10, within_pct=7.5)
    rng = random.Random(3)
    verdicts = [detector.add(t, 1e9 * (1 + rng.uniform(-0.1, 0.1))) for t in range(1, 30)]
    assert not any(verdicts[:9])
    assert verdicts.index(True) <= 12


def test_a_ramp_is_not_steady():
    detector = SteadyDetector(window_s=5, within_pct=7.5)
    assert not any(detector.add(t, 1e8 * 1.1**t) for t in range(1, 60))


def test_steady_after_a_ramp_levels_off():
    detector = SteadyDetector(window_s=5, within_pct=5)
    rates = [1e8 * min(t, 10) for t in range(1, 40)]
    first = next(t for t, rate in enumerate(rates, 1) if detector.add(t, rate))
    assert 10 < first <= 16


def test_nothing_moved_is_never_steady():
    detector = SteadyDetector(window_s=3, within_pct=10)
    assert not any(detector.add(t, 0.0) for t in range(1, 20))


def test_autoterm_watches_operations_when_no_bytes_move():
    assert steadiness_rate(0, 50, 2.0) == 25.0
    assert steadiness_rate(4000, 50, 2.0) == 2000.0


def test_a_timed_put_writes_its_share_then_new_keys_from_it():
    share = KeyRange("p/", [Span(1, 3)])
    keys = list(share.written(5))
    assert keys == [
        "p/obj-00000001",
        "p/obj-00000002",
        "p/obj-00000001.1",
        "p/obj-00000002.1",
        "p/obj-00000001.2",
    ]
    assert keys == list(itertools.islice(share.cycled(), 5))
    other = set(KeyRange("p/", [Span(3, 4)]).written(5))
    assert not other & set(keys)


def test_an_empty_share_writes_nothing_even_when_timed():
    assert list(KeyRange("p/").cycled()) == []
    assert list(KeyRange("p/").written(7)) == []


@pytest.mark.parametrize(
    ("phases", "timed"),
    [
        ("put,get", {0: True, 1: True}),
        ("put,mixed", {0: False, 1: True}),
        ("put,sleep,get,cleanup", {0: True, 2: True}),
    ],
)
def test_a_prefill_put_is_never_timed(phases, timed):
    settings = load_settings(overrides={"phases": phases, "duration_s": 5}, environ={})
    names = settings.phase_names
    assert {i: is_timed(names, i, settings.duration_s) for i in timed} == timed
    if "mixed" not in phases:
        assert not any(is_timed(names, i, None) for i in timed)

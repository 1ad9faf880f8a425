"""The controller against simulated endpoints: it must converge, not merely move."""

import random
from collections.abc import Callable

import pytest

from s3dlio_ray._internal.tuning.scheduler import ConcurrencyController, ConcurrencyPolicy, Mode

MB = 1e6
INTERVAL = 0.5


def simulate(
    controller: ConcurrencyController,
    rate_of: Callable[[int], float],
    throttled_at: Callable[[int], bool] = lambda c: False,
    steps: int = 200,
    noise: float = 0.0,
    seed: int = 1,
) -> list[int]:
    """Feed the controller what an endpoint with throughput curve `rate_of` would deliver."""
    rng = random.Random(seed)
    limits = []
    for _ in range(steps):
        c = controller.limit
        rate = rate_of(c) * (1 + rng.uniform(-noise, noise))
        nbytes = int(rate * INTERVAL)
        controller.observe(nbytes, max(1, nbytes // int(MB)), INTERVAL, throttled_at(c))
        limits.append(controller.limit)
    return limits


def saturating(knee: int, per_connection: float = 50 * MB) -> Callable[[int], float]:
    """Throughput rises linearly with concurrency up to the knee, then stays flat."""
    return lambda c: per_connection * min(c, knee)


def overload(knee: int, per_connection: float = 50 * MB) -> Callable[[int], float]:
    """Rises to the knee, then falls: every extra request costs the endpoint."""
    peak = per_connection * knee
    return lambda c: (
        per_connection * c if c <= knee else max(0.1 * peak, peak * (1 - (c - knee) / knee))
    )


def auto(initial: int = 8, **kw) -> ConcurrencyController:
    return ConcurrencyController(ConcurrencyPolicy(Mode.AUTO, initial, **kw))


@pytest.mark.parametrize("knee", [20, 40, 100, 200])
def test_climbs_to_the_knee_of_a_saturating_endpoint_and_stays(knee):
    limits = simulate(auto(), saturating(knee))
    settled = limits[-100:]
    # It settles at or just past the knee (one geometric step), and only probes from there:
    # downward probes below the knee are brief and undone.
    assert sum(c < knee for c in settled) <= 0.1 * len(settled)
    assert min(settled) >= knee / 1.5 - 1
    assert max(settled) <= max(knee * 1.5 * 1.5, knee + 2)
    assert sorted(settled)[len(settled) // 2] <= knee * 1.5
    assert saturating(knee)(sorted(settled)[len(settled) // 2]) >= 0.95 * saturating(knee)(10**6)


def test_stops_at_the_maximum_when_throughput_keeps_rising():
    limits = simulate(auto(maximum=256), saturating(10_000))
    assert limits[-1] == 256


def test_never_leaves_the_configured_range():
    limits = simulate(auto(minimum=4, maximum=30), saturating(1000), throttled_at=lambda c: c > 25)
    assert all(4 <= c <= 30 for c in limits)


def test_does_not_overshoot_an_endpoint_that_punishes_overload():
    knee = 64
    limits = simulate(auto(), overload(knee))
    settled = limits[-100:]
    median = sorted(settled)[len(settled) // 2]
    assert knee * 0.6 <= median <= knee * 1.5
    assert overload(knee)(median) >= 0.6 * overload(knee)(knee)


def test_backs_off_multiplicatively_on_throttling_and_converges_below_it():
    controller = auto(initial=100)
    controller.observe(0, 0, INTERVAL, throttled=True)
    assert controller.limit == 50
    limits = simulate(controller, saturating(1000), throttled_at=lambda c: c > 90, steps=400)
    settled = limits[-200:]
    throttled_share = sum(c > 90 for c in settled) / len(settled)
    assert throttled_share < 0.1
    assert sorted(settled)[len(settled) // 2] >= 45


def test_converges_with_noisy_measurements():
    limits = simulate(auto(), saturating(48), noise=0.03, steps=300, seed=11)
    settled = limits[-150:]
    median = sorted(settled)[len(settled) // 2]
    assert 40 <= median <= 108


def test_no_completions_is_no_information():
    controller = auto()
    for _ in range(50):
        controller.observe(0, 0, INTERVAL)
    assert controller.limit == 8


def test_fixed_mode_never_changes():
    controller = ConcurrencyController(ConcurrencyPolicy(Mode.FIXED, 12))
    limits = simulate(controller, saturating(1000), throttled_at=lambda c: True, steps=20)
    assert set(limits) == {12}


def test_target_mode_holds_once_the_target_is_met():
    target = 1000 * MB  # 20 connections at 50 MB/s
    policy = ConcurrencyPolicy(Mode.TARGET, 8, target_bytes_per_s=target)
    limits = simulate(ConcurrencyController(policy), saturating(1000), steps=100)
    assert limits[-1] >= 20
    assert max(limits) <= 31  # one step past what the target needs, never a climb to 256


def test_a_flat_noisy_endpoint_keeps_the_limit_low():
    """No gain from more requests: noise must not ratchet the limit up to the maximum."""
    limits = simulate(auto(initial=16), lambda c: 1000 * MB, noise=0.10, steps=2400, seed=5)
    settled = limits[-600:]
    assert sorted(settled)[len(settled) // 2] <= 24
    assert max(settled) <= 54


def test_probes_downward_to_the_smallest_limit_that_delivers():
    """Started far above the knee, it comes down to it (fewer requests, same throughput)."""
    limits = simulate(auto(initial=256), saturating(20), steps=600)
    settled = limits[-200:]
    assert sorted(settled)[len(settled) // 2] <= 30


def test_engines_sharing_one_bottleneck_do_not_ratchet_each_other_up():
    """Two actors on one endpoint that serves `capacity` in all, split in proportion to what each
    has in flight: each one's rate rises when it takes more (from the other), so throughput alone
    would climb both to the maximum. Their latency (Little's law) shows the queue and stops it."""
    rng = random.Random(5)
    capacity, knee = 1000 * MB, 24
    engines = [auto(initial=16), auto(initial=16)]
    history = []
    for _ in range(2400):
        limits = [e.limit for e in engines]
        total = capacity * min(1.0, sum(limits) / knee)
        for limit, engine in zip(limits, engines, strict=True):
            rate = total * limit / sum(limits) * (1 + rng.uniform(-0.15, 0.15))
            nbytes = int(rate * INTERVAL)
            ops = max(1, nbytes // int(MB))
            engine.observe(nbytes, ops, INTERVAL, latency_s=limit / (rate / MB))
        history.append(tuple(e.limit for e in engines))
    settled = history[-600:]
    assert max(max(pair) for pair in settled) <= 64
    assert min(sum(pair) for pair in settled) >= knee  # together they still fill the endpoint


def test_a_long_round_trip_without_queueing_does_not_stop_the_climb():
    """Latency that stays put as concurrency rises (a far endpoint, not a queue) is no brake."""
    controller = auto()
    for _ in range(200):
        c = controller.limit
        rate = saturating(100)(c)
        nbytes = int(rate * INTERVAL)
        controller.observe(nbytes, max(1, nbytes // int(MB)), INTERVAL, latency_s=0.15)
    assert controller.limit >= 100


def test_the_limit_holds_flat_while_the_engines_cpu_is_the_limit():
    """More requests would only wait for the CPU: no climb, no probe, and it says why."""
    controller = ConcurrencyController(ConcurrencyPolicy(Mode.AUTO, 8, measure_intervals=1))
    limits = [controller.observe(1_000_000, 20, 0.5, cpu_bound=True) for _ in range(40)]
    assert set(limits) == {8} and controller.held_by == "client-cpu"
    controller.observe(1_000_000, 20, 0.5)
    assert controller.held_by is None
    assert max(controller.observe(1_000_000 * (i + 2), 20, 0.5) for i in range(30)) > 8

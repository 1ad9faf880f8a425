"""The limit verdicts' rules, one by one, on seconds built by hand (pure), and the resource
tracker's differences between readings."""

from __future__ import annotations

import pytest

from s3dlio_ray._internal.model.bottleneck import Bottleneck, Cap, PhaseBottleneck, judge
from s3dlio_ray._internal.model.resources import (
    ClientCost,
    HostReading,
    NicCounters,
    NicSecond,
    NodeSecond,
    ResourceTracker,
)
from s3dlio_ray._internal.model.vocabulary import Limit

MBIT = 1e6


def second(node: str = "n1", t: float = 1.0, **figures: object) -> NodeSecond:
    base: dict[str, object] = {
        "bytes": 10_000_000,
        "requests": 10,
        "limit": 16,
        "in_flight": 4,
        "latency_p50_s": 0.02,
        "ttfb_p50_s": 0.005,
        "actors_cpu": 0.2,
        "busiest_actor_cpu": 0.2,
        "capacity_cores": 2.0,
        "node_cpu": 0.2,
        "loop_lag_s": 0.001,
        "nics": (NicSecond("eth0", 10 * MBIT, 1 * MBIT, 100 * MBIT),),
    }
    base.update(figures)
    return NodeSecond(node, t, 1.0, **base)  # type: ignore[arg-type]


def seconds(n: int = 6, **figures: object) -> list[NodeSecond]:
    return [second(t=float(i), **figures) for i in range(n)]


def test_a_nic_near_its_speed_names_the_node_and_the_nic() -> None:
    full = (NicSecond("eth0", 94 * MBIT, 2 * MBIT, 100 * MBIT),)
    verdict = judge(seconds(nics=full)).cluster
    assert verdict.kind == Limit.CLIENT_NETWORK and verdict.where == "n1 eth0"
    assert verdict.evidence["nic_utilization"] == pytest.approx(0.94)
    assert verdict.evidence["nic_speed_gbps"] == pytest.approx(0.1)
    assert "n1 eth0 at 94% of 0.1 Gb/s" in verdict.describe()


def test_a_nic_of_unknown_speed_never_names_the_network() -> None:
    unknown = (NicSecond("lo", 9e9, 9e9, None),)
    assert judge(seconds(nics=unknown, in_flight=16)).cluster.kind == Limit.SERVER


@pytest.mark.parametrize(
    "figures",
    [
        {"busiest_actor_cpu": 0.97},
        {"actors_cpu": 1.8},
        {"quota_throttled": 0.6},
        {"loop_lag_s": 0.08},
    ],
)
def test_each_sign_of_a_busy_client_cpu(figures: dict) -> None:
    assert judge(seconds(**figures)).cluster.kind == Limit.CLIENT_CPU


def test_busy_in_under_half_the_seconds_is_not_the_cpu() -> None:
    rows = seconds(4, busiest_actor_cpu=0.97) + seconds(6, in_flight=16)
    assert judge(rows).cluster.kind == Limit.SERVER


def test_requests_waiting_at_the_limit_with_client_headroom_is_the_server() -> None:
    verdict = judge(seconds(in_flight=15)).cluster
    assert verdict.kind == Limit.SERVER
    assert "n1 at 10% CPU (node 20% busy), NICs at 10%, TTFB p50 5 ms" in verdict.describe()


def test_latency_rising_with_concurrency_for_no_throughput_is_the_server() -> None:
    light = [second(t=i, in_flight=4, ttfb_p50_s=0.01) for i in range(4)]
    busy = [second(t=4 + i, in_flight=12, ttfb_p50_s=0.03, limit=64) for i in range(4)]
    verdict = judge(light + busy).cluster
    assert verdict.kind == Limit.SERVER
    assert verdict.evidence["latency_rise"] == pytest.approx(3.0)
    assert "rising with concurrency (x3.0)" in verdict.describe()


def test_throttling_beats_the_client_rules() -> None:
    verdict = judge(seconds(throttles=3, busiest_actor_cpu=0.99)).cluster
    assert verdict.kind == Limit.THROTTLED
    assert verdict.evidence["throttled_share"] == pytest.approx(3 / 13)


def test_the_tools_own_cap_comes_first() -> None:
    cap = Cap(Limit.TARGET, 0.1e9, 0.095e9)
    verdict = judge(seconds(busiest_actor_cpu=0.99), [cap]).cluster
    assert verdict.kind == Limit.TARGET
    assert verdict.describe() == "held at its target: 0.095 of 0.1 GB/s"
    below = Cap(Limit.RATE_LIMIT, 1000, 500, "ops/s")
    assert judge(seconds(busiest_actor_cpu=0.99), [below]).cluster.kind == Limit.CLIENT_CPU
    overshot = Cap(Limit.TARGET, 0.1e9, 0.5e9)  # the cap did not hold the rate: not the limit
    assert judge(seconds(busiest_actor_cpu=0.99), [overshot]).cluster.kind == Limit.CLIENT_CPU


def test_nothing_held_is_unclear_naming_the_nearest_rule() -> None:
    verdict = judge(seconds(in_flight=2, busiest_actor_cpu=0.5)).cluster
    assert verdict.kind == Limit.UNCLEAR
    assert verdict.evidence["nearest"] == "client-cpu (59% of its threshold)"
    short = judge(seconds(1)).cluster
    assert short.kind == Limit.UNCLEAR and "fewer than 2 seconds" in str(short.evidence["nearest"])


def test_the_cluster_takes_the_kind_most_nodes_share() -> None:
    full = (NicSecond("eth0", 95 * MBIT, 0, 100 * MBIT),)
    rows = [second("a", i, nics=full) for i in range(4)]
    rows += [second("b", i, nics=full) for i in range(4)]
    rows += [second("c", i, busiest_actor_cpu=0.99) for i in range(4)]
    verdict = judge(rows)
    assert verdict.nodes["c"].kind == Limit.CLIENT_CPU
    assert verdict.cluster.kind == Limit.CLIENT_NETWORK
    assert verdict.cluster.where == "a eth0, b eth0"
    assert verdict.cluster.evidence["nodes_limited"] == 2
    assert PhaseBottleneck.from_dict(verdict.to_dict()) == verdict
    assert Bottleneck.from_dict(verdict.cluster.to_dict()) == verdict.cluster


def reading(
    pid: int, at: float, cpu: float, busy: float, rx: int, throttled: int = 0
) -> HostReading:
    nic = NicCounters("eth0", rx, 0, 1e9)
    return HostReading(pid, at, cpu, busy, at * 2, 0.5, int(at * 10), throttled, (nic,))


def test_the_tracker_counts_each_process_and_each_node_once() -> None:
    tracker = ResourceTracker()
    for pid in (1, 2):
        tracker.observe("n1", reading(pid, 10.0, 1.0, 5.0, 1000), 0.0, 0)
    assert "actors_cpu" not in tracker.interval("n1")
    tracker.observe("n1", reading(1, 11.0, 1.4, 6.0, 126_001_000, 5), 0.2, 4)
    tracker.observe("n1", reading(2, 11.0, 1.1, 6.0, 126_001_000, 5), 0.0, 4)
    figures = tracker.interval("n1")
    assert figures["actors_cpu"] == pytest.approx(0.5)
    assert figures["busiest_actor_cpu"] == pytest.approx(0.8)  # 0.4 of the quota's 0.5 core
    assert figures["loop_lag_s"] == pytest.approx(0.2 / 8)
    assert figures["node_cpu"] == pytest.approx(0.5)
    assert figures["quota_throttled"] == pytest.approx(0.5)
    (nic,) = figures["nics"]  # type: ignore[misc]
    assert nic.rx_bps == pytest.approx(1.008e9) and nic.utilization == pytest.approx(1.008)


def test_client_cost_per_byte_and_request() -> None:
    cost = ClientCost.of(seconds(4, actors_cpu=0.5))
    assert cost is not None
    assert cost.cpu_s == pytest.approx(2.0)
    assert cost.cpu_s_per_gb == pytest.approx(2.0 / 0.04)
    assert cost.us_per_request == pytest.approx(2.0 / 40 * 1e6)
    assert ClientCost.from_dict(cost.to_dict()) == cost
    assert ClientCost.of(seconds(2, actors_cpu=None)) is None


def test_the_readme_states_each_rule_as_the_code_judges_it():
    from conftest import ROOT

    from s3dlio_ray._internal.model.bottleneck import RULES

    readme = (ROOT / "README.md").read_text()
    for kind in (Limit.THROTTLED, Limit.CLIENT_CPU, Limit.SERVER):
        assert f"| `{kind}` | {RULES[kind]} |" in readme, kind
    assert RULES[Limit.CLIENT_NETWORK] in readme


def test_a_process_read_twice_in_an_interval_counts_once():
    """A share's start and its first snapshot fall in one interval: one process, not two."""
    tracker = ResourceTracker()
    tracker.observe("n1", reading(1, 10.0, 1.0, 5.0, 0), 0.0, 0)
    tracker.observe("n1", reading(1, 10.5, 1.2, 5.0, 0), 0.0, 0)
    tracker.observe("n1", reading(1, 11.0, 1.4, 5.0, 0), 0.0, 0)
    assert tracker.interval("n1")["actors_cpu"] == pytest.approx(0.4)


def test_a_shares_start_is_its_first_seconds_baseline_not_an_interval():
    """What the process did between two phases counts in neither; the loop's lag of earlier
    shares is not this one's."""
    tracker = ResourceTracker()
    tracker.observe("n1", reading(1, 10.0, 1.0, 5.0, 0), 0.5, 10)
    tracker.interval("n1")
    tracker.observe("n1", reading(1, 20.0, 9.0, 5.0, 0), 0.5, 10, start=True)
    tracker.observe("n1", reading(1, 21.0, 9.3, 5.0, 0), 0.5, 10)
    figures = tracker.interval("n1")
    assert figures["actors_cpu"] == pytest.approx(0.3)
    assert "loop_lag_s" not in figures

"""What collecting the limit verdicts' figures costs: per actor and second, the counters it reads
(its process's and the node's CPU, the cgroup quota, the NICs its connections use: one
HostProbe.read with its snapshot, two quota reads by its controller's ticks), and per node and
second on the driver, the tracker's differences and the live verdict over the last 60 s.

    .venv/bin/python benchmarks/bench_collect.py [--nodes 16] [--actors-per-node 8]

Prints the median over 5 passes of microseconds of CPU per call and the share of one core each
costs at the rates a run calls them.
"""

from __future__ import annotations

import argparse
import dataclasses
import statistics
import time
from collections.abc import Callable

from s3dlio_ray._internal.model.bottleneck import judge
from s3dlio_ray._internal.model.resources import NicSecond, NodeSecond, ResourceTracker
from s3dlio_ray._internal.storage.machine import HostProbe, local_address_to, nics_of

PASSES = 5


def cpu_us(work: Callable[[], object], calls: int) -> float:
    """Median over PASSES of CPU microseconds per call."""
    passes = []
    for _ in range(PASSES):
        began = time.process_time()
        for _ in range(calls):
            work()
        passes.append((time.process_time() - began) / calls * 1e6)
    return statistics.median(passes)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--nodes", type=int, default=16)
    parser.add_argument("--actors-per-node", type=int, default=8)
    args = parser.parse_args()
    address = local_address_to("127.0.0.1", 9000) or "127.0.0.1"
    probe = HostProbe(nics_of([address]), nic_gbps=10)
    read_us = cpu_us(probe.read, 2000)
    quota_us = cpu_us(probe.quota_throttled_since, 2000)
    actor = read_us + 2 * quota_us
    print(f"actor: HostProbe.read {read_us:.1f} us, quota read {quota_us:.1f} us")
    print(f"actor: {actor:.1f} us a second = {actor / 1e6:.4%} of a core (one read, two ticks)")

    tracker = ResourceTracker()
    readings = [probe.read() for _ in range(2)]

    def one_node_second() -> None:
        for pid in range(args.actors_per_node):
            for reading in readings:
                tracker.observe("n1", dataclasses.replace(reading, pid=pid), 0.0, 0)
        tracker.interval("n1")

    tracked = cpu_us(one_node_second, 200)
    nic = (NicSecond("eth0", 9e9, 1e8, 1e10),)
    seconds = [
        NodeSecond(
            f"n{n}",
            float(t),
            1.0,
            bytes=10**8,
            requests=100,
            limit=16,
            in_flight=15,
            latency_p50_s=0.01,
            ttfb_p50_s=0.005,
            actors_cpu=0.5,
            busiest_actor_cpu=0.5,
            capacity_cores=8.0,
            node_cpu=0.3,
            loop_lag_s=0.001,
            nics=nic,
        )
        for n in range(args.nodes)
        for t in range(60)
    ]
    verdict = cpu_us(lambda: judge(seconds), 20)
    per_second = tracked * args.nodes + verdict
    print(
        f"driver: tracker {tracked:.0f} us per node of {args.actors_per_node} actors, live "
        f"verdict over 60 s of {args.nodes} nodes {verdict:.0f} us: {per_second / 1e6:.2%} of "
        "a core"
    )


if __name__ == "__main__":
    main()

"""The cluster controller beside the per-actor controllers alone, on a shared bottleneck.

    .venv/bin/python benchmarks/bench_controller.py                # 3 rounds
    .venv/bin/python benchmarks/bench_controller.py --rounds 1 --seconds 20

Three simulated Ray nodes (ray.cluster_utils, one CPU each) of two actors each GET 64 KiB objects
from the null endpoint through one loopback link of limited bandwidth and added latency
(tests/proxy.py), for a timed phase. Each round runs `controller: actor` (every actor adapts
alone) and `controller: cluster` (the driver steers them), and the cluster controller with
`cluster_target_gbps` at half the link, on the same cluster and link. Reported over the phase's
later half: the cluster's bytes a second against the link, requests in flight against the link's
bandwidth-delay product, Jain's fairness over the actors, and the GET latency percentiles.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import sys
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray
from ray.cluster_utils import Cluster

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))

from bench_transfer import wait_for_port
from proxy import TcpProxy

from s3dlio_ray._internal.lab import null_endpoint
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

HERE = Path(__file__).resolve().parent
OBJECT = 64 * 1024


def run_once(endpoint: str, link: float, delay: float, seconds: int, **tuning) -> dict:
    settings = load_settings(
        HERE.parent / "configs" / "quick.yaml",
        {
            "objects": 200,
            "object_size": "64KiB",
            "phases": ["put", {"get": {"duration_s": seconds, "verify": False}}],
            "metrics_port": "off",
            "actors_per_node": 2,
            **tuning,
        },
        environ={},
    )
    host, port = endpoint.removeprefix("http://").split(":")

    async def main():
        proxy = await TcpProxy(host, int(port), delay, link).start()
        try:
            plan = plan_run(settings, (proxy.url,), StaticCredentials("bench", "bench"))
            return await execute(plan)
        finally:
            await proxy.close()

    result = asyncio.run(main())
    assert result.ok, result.error
    get = result.phases[1]
    rows = [row for row in result.timeseries if row.op == "get"]
    end = max(row.t_s for row in rows)
    seconds_seen: dict[float, list] = {}
    for row in rows:
        if end - seconds / 2 < row.t_s < end:
            seconds_seen.setdefault(row.t_s, []).append(row)
    late = list(seconds_seen.values())
    actor_bytes = [a.summary.bytes for a in get.actors]
    return {
        "rate": statistics.median(sum(r.bytes for r in s) for s in late) / link,
        "in_flight": statistics.median(sum(r.in_flight for r in s) for s in late),
        "jain": sum(actor_bytes) ** 2 / (len(actor_bytes) * sum(b * b for b in actor_bytes)),
        "p50_ms": get.latency.p50_s * 1000,
        "p99_ms": get.latency.p99_s * 1000,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--link-mb", type=float, default=16.0, help="the link's MB/s")
    parser.add_argument("--delay-ms", type=float, default=100.0, help="added to each response")
    args = parser.parse_args()
    link, delay = args.link_mb * 1e6, args.delay_ms / 1000
    bdp = link * (delay + OBJECT / link) / OBJECT
    port, server = null_endpoint.launch("64KiB")
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": 1, "include_dashboard": False},
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    layouts = {
        "actor (each alone)": {"controller": "actor"},
        "cluster": {"controller": "cluster"},
        "cluster, target = link / 2": {"cluster_target_gbps": link / 2 / 1e9},
    }
    samples: dict[str, list[dict]] = {name: [] for name in layouts}
    try:
        wait_for_port(port)
        endpoint = f"http://127.0.0.1:{port}"
        for round_no in range(args.rounds):
            for name, tuning in layouts.items():
                sample = run_once(endpoint, link, delay, args.seconds, **tuning)
                samples[name].append(sample)
                print(f"round {round_no + 1} {name}: {sample}", flush=True)
    finally:
        ray.shutdown()
        cluster.shutdown()
        server.terminate()
        server.wait()
    print(
        f"\n3 nodes x 2 actors, GET 64 KiB through a {args.link_mb:g} MB/s link with "
        f"{args.delay_ms:g} ms added (BDP {bdp:.0f} requests), later half of {args.seconds} s, "
        f"medians of {args.rounds}"
    )
    print("| controller | rate / link | in flight | in flight / BDP | Jain | p50 ms | p99 ms |")
    print("|---|---|---|---|---|---|---|")
    for name, runs in samples.items():
        m = {key: statistics.median(run[key] for run in runs) for key in runs[0]}
        print(
            f"| {name} | {m['rate']:.2f} | {m['in_flight']:.0f} | {m['in_flight'] / bdp:.1f} | "
            f"{m['jain']:.3f} | {m['p50_ms']:.0f} | {m['p99_ms']:.0f} |"
        )


if __name__ == "__main__":
    main()

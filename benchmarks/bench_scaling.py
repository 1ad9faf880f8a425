"""Scaling of the Ray layer against the null endpoint: actors per node, and simulated nodes.

    .venv/bin/python benchmarks/bench_scaling.py            # 3 rounds, 200 x 10 MiB
    .venv/bin/python benchmarks/bench_scaling.py --rounds 1 --objects 100

Layouts, each a fresh ray.cluster_utils cluster on this machine: one node with one actor, one node
with two actors, and three one-CPU nodes with one actor each (three "nodes" sharing this
machine's two cores: it shows the driver and placement at work, not more hardware). Each run is
the real workload path (driver, actors, live gathering every second) doing PUT then GET of the
objects; the driver's own CPU seconds spent gathering statistics are reported beside it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray
from ray.cluster_utils import Cluster

from s3dlio_ray._internal.lab import null_endpoint
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

HERE = Path(__file__).resolve().parent
LAYOUTS = {"1 node x 1 actor": (1, 1), "1 node x 2 actors": (1, 2), "3 nodes x 1 actor": (3, 1)}


def run_layout(nodes: int, actors: int, endpoint: str, objects: int) -> dict[str, float]:
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": actors if nodes == 1 else 1, "include_dashboard": False},
    )
    for _ in range(nodes - 1):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    try:
        settings = load_settings(
            HERE.parent / "configs" / "quick.yaml",
            {
                "objects": objects,
                "phases": "put,get",
                "metrics_port": "off",
                "actors_per_node": actors,
                "concurrency": 16,
                "verify": False,
            },
            environ={},
        )
        plan = plan_run(settings, endpoint, StaticCredentials("bench", "bench"))
        result = asyncio.run(execute(plan))
        assert result.ok, result.error
        put, get = result.phases
        cluster = result.cluster
        return {
            "put": put.gbps,
            "get": get.gbps,
            "gathers": cluster.gathers,
            "gather_cpu_ms": 1000 * cluster.driver_gather_cpu_s / max(cluster.gathers, 1),
            "actors": cluster.actors,
            "nodes": len(cluster.nodes),
        }
    finally:
        ray.shutdown()
        cluster.shutdown()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--objects", type=int, default=200)
    args = parser.parse_args()
    port, server = null_endpoint.launch("10MiB")
    endpoint = f"http://127.0.0.1:{port}"
    samples: dict[str, list[dict[str, float]]] = {name: [] for name in LAYOUTS}
    try:
        for round_no in range(args.rounds):
            for name, (nodes, actors) in LAYOUTS.items():
                sample = run_layout(nodes, actors, endpoint, args.objects)
                samples[name].append(sample)
                print(
                    f"round {round_no + 1} {name}: put {sample['put']:.2f} GB/s, "
                    f"get {sample['get']:.2f} GB/s, gathering {sample['gather_cpu_ms']:.2f} "
                    f"ms CPU per second",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()
    base = {
        op: statistics.median(s[op] for s in samples["1 node x 1 actor"]) for op in ("put", "get")
    }
    print(f"\n{args.objects} x 10 MiB against the null endpoint, medians of {args.rounds}")
    print("| layout | PUT GB/s | GET GB/s | PUT ratio | GET ratio | driver gathering, ms CPU/s |")
    print("|---|---|---|---|---|---|")
    for name, runs in samples.items():
        put = statistics.median(s["put"] for s in runs)
        get = statistics.median(s["get"] for s in runs)
        gather = statistics.median(s["gather_cpu_ms"] for s in runs)
        print(
            f"| {name} | {put:.2f} | {get:.2f} | {put / base['put']:.2f} | "
            f"{get / base['get']:.2f} | {gather:.2f} |"
        )


if __name__ == "__main__":
    main()

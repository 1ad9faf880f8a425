"""The driver at scale: gathering many actors' statistics every second.

    .venv/bin/python benchmarks/bench_driver.py                       # 3 nodes x 11 actors
    .venv/bin/python benchmarks/bench_driver.py --actors-per-node 16 --seconds 30

Three simulated Ray nodes (ray.cluster_utils; each claims `--actors-per-node` CPUs, so the actors
oversubscribe this machine's cores) run a PUT of tiny objects and a timed GET against the null
endpoint, through the real driver: RayPool, PhaseExecutor and the runner, as `execute` runs them,
with the executor kept at hand for its per-tick record. The cluster is capped (`--rate`) so the
actors keep working without starving each other of the shared cores: what is measured is the
driver, not the box. Reported: each tick's gather wall time (asking every share for its snapshot
until the second's sample is taken; it must stay under 100 ms), the driver's CPU per actor per
tick, and any second missing from the per-second series of any node; then, on the same
cluster, Ray's own floor: the same number of idle async actors answering a trivial method,
gathered the same way.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import time
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray
from ray.cluster_utils import Cluster

from s3dlio_ray._internal.cluster.driver import RayPool
from s3dlio_ray._internal.execution.build import cluster_policy
from s3dlio_ray._internal.lab import null_endpoint
from s3dlio_ray._internal.live.executor import PhaseExecutor
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.run.runner import run_workload
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

HERE = Path(__file__).resolve().parent
NODES = 3


def measure(endpoint: str, actors_per_node: int, seconds: int, rate: str) -> dict[str, float]:
    settings = load_settings(
        HERE.parent / "configs" / "quick.yaml",
        {
            "objects": 2000,
            "object_size": "1KiB",
            "phases": ["put", {"get": {"duration_s": seconds, "verify": False}}],
            "metrics_port": "off",
            "actors_per_node": actors_per_node,
            "concurrency": 4,
            "rate_limit": rate,
        },
        environ={},
    )
    plan = plan_run(settings, (endpoint,), StaticCredentials("bench", "bench"))
    configuration = plan.configurations[0]

    async def main():
        pool = RayPool(settings, plan.access).start()
        try:
            executor = PhaseExecutor(
                pool,
                cluster_policy=lambda phase, overrides: cluster_policy(
                    overrides.onto(settings), phase
                ),
            )
            result = await run_workload(plan, configuration, executor)
            return result, executor
        finally:
            await pool.close()

    result, executor = asyncio.run(main())
    assert result.ok, result.error
    actors = result.cluster.actors
    walls = sorted(executor.gather_wall_s)
    by_node: dict[str, list[float]] = {}
    for row in result.timeseries:
        if row.op == "get":
            by_node.setdefault(row.node, []).append(row.t_s)
    gaps = sum(1 for times in by_node.values() for a, b in itertools.pairwise(times) if b - a > 1.5)
    return {
        "actors": actors,
        "gathers": len(walls),
        "wall_p50_ms": 1000 * statistics.median(walls),
        "wall_p99_ms": 1000 * walls[min(len(walls) - 1, int(0.99 * len(walls)))],
        "wall_max_ms": 1000 * walls[-1],
        "cpu_ms_per_actor": 1000 * result.cluster.driver_gather_cpu_s / len(walls) / actors,
        "gaps": gaps,
        "seconds": sum(len(t) for t in by_node.values()) / len(by_node),
    }


@ray.remote
class Idle:
    async def ping(self) -> None:
        return None


def ray_floor(actors: int, gathers: int = 20) -> tuple[float, float]:
    """(wall ms, driver CPU ms per actor) of gathering `actors` idle actors' trivial answers."""
    handles = [Idle.options(num_cpus=1).remote() for _ in range(actors)]
    ray.get([h.ping.remote() for h in handles])

    async def gather_all() -> tuple[list[float], list[float]]:
        walls, cpus = [], []
        for _ in range(gathers):
            began, cpu0 = time.perf_counter(), time.process_time()
            await asyncio.gather(*(h.ping.remote() for h in handles))
            walls.append(time.perf_counter() - began)
            cpus.append(time.process_time() - cpu0)
            await asyncio.sleep(0.2)
        return walls, cpus

    walls, cpus = asyncio.run(gather_all())
    for handle in handles:
        ray.kill(handle)
    return 1000 * statistics.median(walls), 1000 * statistics.median(cpus) / actors


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--actors-per-node", type=int, default=11)
    parser.add_argument("--seconds", type=int, default=30)
    parser.add_argument("--rate", default="1000 ops/s", help="the whole cluster's cap")
    args = parser.parse_args()
    port, server = null_endpoint.launch("1KiB")
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={"num_cpus": args.actors_per_node, "include_dashboard": False},
    )
    for _ in range(NODES - 1):
        cluster.add_node(num_cpus=args.actors_per_node)
    cluster.wait_for_nodes()
    try:
        m = measure(f"http://127.0.0.1:{port}", args.actors_per_node, args.seconds, args.rate)
        floor_wall, floor_cpu = ray_floor(m["actors"])
    finally:
        ray.shutdown()
        cluster.shutdown()
        server.terminate()
        server.wait()
    per_tick_1000 = m["cpu_ms_per_actor"] * 1000
    print(
        f"{m['actors']} actors on {NODES} simulated nodes, GET of 1 KiB capped at {args.rate} for "
        f"{args.seconds} s, {m['gathers']} gathers"
    )
    print("| actors | gather p50 ms | p99 ms | max ms | driver CPU ms / actor / tick | gaps |")
    print("|---|---|---|---|---|---|")
    print(
        f"| {m['actors']} | {m['wall_p50_ms']:.1f} | {m['wall_p99_ms']:.1f} | "
        f"{m['wall_max_ms']:.1f} | {m['cpu_ms_per_actor']:.3f} | {m['gaps']} |"
    )
    print(
        f"Ray's floor, {m['actors']} idle actors answering a trivial method: "
        f"{floor_wall:.1f} ms wall, {floor_cpu:.3f} ms of driver CPU per actor"
    )
    print(f"at 1,000 actors the driver would spend ~{per_tick_1000:.0f} ms of CPU each second")


if __name__ == "__main__":
    main()

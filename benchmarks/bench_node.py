"""A whole node: the engine as 1 and K processes and as K Ray actors, beside the s3dlio wheel as
1 and K processes, plain and HTTPS, 10 MiB / 128 KiB / 4 KiB objects, in one run.

    .venv/bin/python benchmarks/bench_node.py                  # K = half the cores, at least 2
    .venv/bin/python benchmarks/bench_node.py --processes 8 --rounds 3

The endpoint is the null endpoint (lab/null_endpoint.py) as K processes on one port, over HTTPS
with a certificate from a CA made for the run. A bare process is one bench_transfer.py worker: PUT
then GET of its keys at concurrency 16, twice, the warm second pass timed, with its own CPU
seconds. K processes meet before each pass and operation (a barrier), so they run side by side; the
node's rate is everything they moved over the span from the first start to the last end, its CPU
their CPU seconds added up. The Ray layouts are the real workload path (driver, actors, live
gathering) on a local Ray cluster of K CPUs with `actors_per_node` 1 and K, concurrency 16 per
actor, verification off: a PUT and a GET phase of `--seconds` each (timed, so a phase's start and
end weigh little). Prints GB/s, ops/s and CPU s/GB per layout, then the ratios the node targets: K
engine processes over s3dlio's best layout, and one actor over one bare engine process. On a box of
few cores the endpoint shares them with the clients, so the node ratios mean little there; CPU per
GB and per request still compare.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

import ray
from bench_transfer import CREDENTIALS, object_bytes, test_ca, wait_for_port

from s3dlio_ray._internal.lab import null_endpoint
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

HERE = Path(__file__).resolve().parent
SIZES = {"10MiB": 48, "128KiB": 2000, "4KiB": 5000}
"""Object size -> objects per process."""
CONCURRENCY = 16


def bare(client: str, processes: int, url: str, size: str, objects: int, ca: str) -> dict:
    """K bare worker processes of `client` side by side: rates and CPU seconds added up."""
    env = {**os.environ, **CREDENTIALS, "AWS_CA_BUNDLE": ca}
    command = [
        sys.executable,
        str(HERE / "bench_transfer.py"),
        "--worker",
        client,
        "--endpoint",
        url,
        "--concurrency",
        str(CONCURRENCY),
        "--objects",
        str(objects),
        "--object-size",
        size,
    ]
    command += ["--barrier", tempfile.mkdtemp(), "--parties", str(processes)]
    workers = [
        subprocess.Popen(command, env=env, stdout=subprocess.PIPE, text=True)
        for _ in range(processes)
    ]
    outputs = [json.loads(w.communicate()[0].strip().splitlines()[-1]) for w in workers]
    gb = objects * object_bytes(size) / 1e9
    measured = {}
    for op in ("put", "get"):
        span = max(out[op]["ended"] for out in outputs) - min(out[op]["began"] for out in outputs)
        measured[op] = {
            "gbps": gb * processes / span,
            "ops": objects * processes / span,
            "cpu_s_per_gb": sum(out[op]["cpu_s"] for out in outputs) / (gb * processes),
        }
    return measured


def through_ray(actors: int, url: str, size: str, objects: int, ca: str, seconds: float) -> dict:
    """The workload path with `actors` actors on the local node: timed PUT and GET phases."""
    settings = load_settings(
        HERE.parent / "configs" / "quick.yaml",
        {
            "objects": objects * actors,
            "object_size": str(object_bytes(size)),
            "phases": [
                {"put": {"duration_s": seconds}},
                {"get": {"verify": False, "duration_s": seconds}},
            ],
            "metrics_port": "off",
            "actors_per_node": actors,
            "concurrency": CONCURRENCY,
            "ca_bundle": ca,
        },
        environ={},
    )
    plan = plan_run(settings, (url,), StaticCredentials("bench", "bench-secret"))
    result = asyncio.run(execute(plan))
    assert result.ok, result.error
    put, get = result.phases
    return {
        op: {"gbps": phase.gbps, "ops": phase.stats.ops / phase.elapsed_s, "cpu_s_per_gb": None}
        for op, phase in (("put", put), ("get", get))
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--processes", type=int, default=max(2, (os.cpu_count() or 2) // 2))
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--sizes", default=",".join(SIZES))
    parser.add_argument("--seconds", type=float, default=8, help="each Ray phase")
    args = parser.parse_args()
    k = args.processes
    ca, chain, key = test_ca(Path(tempfile.mkdtemp()))
    ray.init(address="local", num_cpus=k, include_dashboard=False, log_to_driver=False)
    layouts = {
        "engine x1": lambda url, size, n: bare("engine-h1", 1, url, size, n, ca),
        f"engine x{k}": lambda url, size, n: bare("engine-h1", k, url, size, n, ca),
        "ray 1 actor": lambda url, size, n: through_ray(1, url, size, n, ca, args.seconds),
        f"ray {k} actors": lambda url, size, n: through_ray(k, url, size, n, ca, args.seconds),
        "s3dlio x1": lambda url, size, n: bare("s3dlio", 1, url, size, n, ca),
        f"s3dlio x{k}": lambda url, size, n: bare("s3dlio", k, url, size, n, ca),
    }
    samples: dict[tuple[str, str, str, str], list[dict]] = {}
    for size in args.sizes.split(","):
        for scheme in ("http", "https"):
            options = ["--processes", str(k)]
            if scheme == "https":
                options += ["--tls-cert", chain, "--tls-key", key]
            port, endpoint = null_endpoint.launch(str(object_bytes(size)), *options)
            try:
                wait_for_port(port)
                url = f"{scheme}://127.0.0.1:{port}"
                for round_no in range(args.rounds):
                    for name, run in layouts.items():
                        measured = run(url, size, SIZES[size])
                        for op, m in measured.items():
                            samples.setdefault((size, scheme, name, op), []).append(m)
                        print(
                            f"round {round_no + 1} {size} {scheme} {name}: {measured}", flush=True
                        )
            finally:
                endpoint.terminate()
                endpoint.wait()
    ray.shutdown()
    report(samples, k, args.rounds)


def report(samples: dict, k: int, rounds: int) -> None:
    def median(values: list[dict], key: str) -> float | None:
        present = [v[key] for v in values if v[key] is not None]
        return statistics.median(present) if present else None

    print(f"\nK = {k}, concurrency {CONCURRENCY} per process or actor, medians of {rounds}")
    print("| size | scheme | op | layout | GB/s | ops/s | CPU s/GB |")
    print("|---|---|---|---|---|---|---|")
    table = {}
    for (size, scheme, name, op), values in samples.items():
        gbps, ops, cpu = (median(values, key) for key in ("gbps", "ops", "cpu_s_per_gb"))
        table[(size, scheme, name, op)] = gbps
        cpu_text = "-" if cpu is None else f"{cpu:.2f}"
        print(
            f"| {size} | {scheme} | {op.upper()} | {name} | {gbps:.2f} | {ops:,.0f} | {cpu_text} |"
        )
    print("\n| size | scheme | op | engine x K / s3dlio's best | 1 actor / 1 process |")
    print("|---|---|---|---|---|")
    for size, scheme, name, op in table:
        if name != "engine x1":
            continue
        best = max(
            table[(size, scheme, "s3dlio x1", op)], table[(size, scheme, f"s3dlio x{k}", op)]
        )
        node = table[(size, scheme, f"engine x{k}", op)] / best
        actor = table[(size, scheme, "ray 1 actor", op)] / table[(size, scheme, name, op)]
        print(f"| {size} | {scheme} | {op.upper()} | {node:.2f} | {actor:.2f} |")


if __name__ == "__main__":
    main()

"""Key spaces of millions of objects: driver and actor memory and the cost per object, flat.

    .venv/bin/python benchmarks/bench_keyspace.py                      # 10k, 100k, 1M objects
    .venv/bin/python benchmarks/bench_keyspace.py --objects 1000000

Each pass runs `s3dlio-ray run` with one PUT phase of N 16-byte objects against the null
endpoint on a local Ray instance (verification off), samples the resident memory of the driver
and of the run's own transfer actors once the first objects are written and again as the phase
ends, and prints the PUT phase's time and the driver's plus actors' CPU time (from the moment
the actors exist) per object. Shares are
index ranges and the keys a PUT stored are spans, so neither memory nor cost per object should
grow with N.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
from bench_memory import MIB, actors  # noqa: E402

from s3dlio_ray._internal.lab import null_endpoint  # noqa: E402


def cpu_s(process: psutil.Process) -> float:
    with contextlib.suppress(psutil.NoSuchProcess):
        times = process.cpu_times()
        return times.user + times.system
    return 0.0


def one_pass(objects: int, port: int) -> dict[str, float]:
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    command = [
        sys.executable,
        "-m",
        "s3dlio_ray",
        "run",
        "configs/quick.yaml",
        "--endpoint",
        f"http://127.0.0.1:{port}",
        "--phases",
        "put",
        "--objects",
        str(objects),
        "--object-size",
        "16",
        "--set",
        "verify=false",
        "--metrics-port",
        "off",
        "--quiet",
        "--output",
        f"results/bench-keyspace-{objects}.json",
    ]
    driver = subprocess.Popen(command, cwd=HERE.parent, env=env, stdout=subprocess.PIPE, text=True)
    me = psutil.Process(driver.pid)
    seen: dict[int, float] = {}
    first: dict[int, float] = {}
    last: dict[int, float] = {}
    cpu: dict[int, tuple[float, float]] = {}
    while driver.poll() is None:
        time.sleep(0.5)
        working = actors(me)
        now = time.perf_counter()
        with contextlib.suppress(psutil.NoSuchProcess):
            for process in [me, *working] if working else []:
                seen.setdefault(process.pid, now)
                used = cpu_s(process)
                cpu[process.pid] = (cpu.get(process.pid, (used, used))[0], used)
                if now - seen[process.pid] >= 1.5:
                    rss = process.memory_info().rss / MIB
                    first.setdefault(process.pid, rss)
                    last[process.pid] = rss
    output = driver.stdout.read() if driver.stdout else ""
    if driver.returncode != 0:
        raise SystemExit(f"run failed ({driver.returncode}): {output[-2000:]}")
    result = json.loads((HERE.parent / f"results/bench-keyspace-{objects}.json").read_text())
    put = result["phases"][0]
    growth = {pid: last[pid] - first[pid] for pid in first}
    return {
        "objects": put["objects"],
        "phase_us": put["elapsed_s"] / objects * 1e6,
        "cpu_us": sum(end - begin for begin, end in cpu.values()) / objects * 1e6,
        "driver_first": first.get(driver.pid, 0.0),
        "driver_growth": growth.pop(driver.pid, 0.0),
        "actor_growth": max(growth.values(), default=0.0),
        "actors": len(growth),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--objects", type=int, nargs="+", default=[10_000, 100_000, 1_000_000])
    args = parser.parse_args()
    port, server = null_endpoint.launch("16")
    try:
        time.sleep(1)
        print(
            "| objects | PUT us/object | CPU us/object | driver RSS | driver growth "
            "| actor growth (max) |"
        )
        print("|---|---|---|---|---|---|")
        for objects in args.objects:
            r = one_pass(objects, port)
            print(
                f"| {r['objects']:,} | {r['phase_us']:.0f} | {r['cpu_us']:.0f} | "
                f"{r['driver_first']:.0f} MiB | {r['driver_growth']:+.0f} MiB | "
                f"{r['actor_growth']:+.0f} MiB ({r['actors']:.0f} actors) |",
                flush=True,
            )
    finally:
        server.terminate()


if __name__ == "__main__":
    main()

"""Memory over a long run: driver and actor RSS at the start and the end of a 20-minute run.

    .venv/bin/python benchmarks/bench_memory.py                 # 1200 s, about 21 minutes
    .venv/bin/python benchmarks/bench_memory.py --duration 120

Runs `s3dlio-ray run configs/mixed.yaml` (GET/PUT/STAT/DELETE by weight over a key pool) for
`--duration` seconds against the null endpoint (no verification: it serves zeros), on a local Ray
instance, and samples the resident memory of the driver and of every transfer actor process. Flat
figures mean statistics stay histograms and per-second rows, never a list of every request.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import subprocess
import sys
import time
from pathlib import Path

import psutil

from s3dlio_ray._internal.lab import null_endpoint

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024


def actors(driver: psutil.Process) -> list[psutil.Process]:
    """The run's own transfer actors: processes of the Ray instance the driver started (so actors
    of another Ray on the same machine are not counted)."""
    found = []
    for process in driver.children(recursive=True):
        with contextlib.suppress(psutil.NoSuchProcess):
            if any("TransferActor" in part for part in process.cmdline()):
                found.append(process)
    return found


def rss_mib(processes: list[psutil.Process]) -> list[float]:
    sizes = []
    for process in processes:
        with contextlib.suppress(psutil.NoSuchProcess):
            sizes.append(process.memory_info().rss / MIB)
    return sizes


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--duration", type=float, default=1200)
    parser.add_argument("--warmup", type=float, default=60, help="seconds before the first sample")
    args = parser.parse_args()
    port, server = null_endpoint.launch("1MiB")
    env = {**os.environ, "AWS_ACCESS_KEY_ID": "bench", "AWS_SECRET_ACCESS_KEY": "bench"}
    driver = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "s3dlio_ray",
            "run",
            "configs/mixed.yaml",
            "--endpoint",
            f"http://127.0.0.1:{port}",
            "--duration",
            str(args.duration),
            "--set",
            "verify=false",
            "--metrics-port",
            "off",
            "--quiet",
            "--output",
            "results/bench-memory.json",
        ],
        cwd=HERE.parent,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        time.sleep(args.warmup)
        me = psutil.Process(driver.pid)
        start = (rss_mib([me])[0], rss_mib(actors(me)))
        print(
            f"after {args.warmup:.0f} s: driver {start[0]:.0f} MiB, actors "
            f"{', '.join(f'{r:.0f}' for r in start[1])} MiB",
            flush=True,
        )
        time.sleep(max(0.0, args.duration - args.warmup - 15))
        end = (rss_mib([me])[0], rss_mib(actors(me)))
        print(
            f"after {args.duration - 15:.0f} s: driver {end[0]:.0f} MiB, actors "
            f"{', '.join(f'{r:.0f}' for r in end[1])} MiB",
            flush=True,
        )
        output, _ = driver.communicate(timeout=600)
        print(output[-3000:])
    finally:
        driver.kill()
        server.terminate()


if __name__ == "__main__":
    main()

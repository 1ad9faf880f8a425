"""How closely a replay keeps its log's schedule: lateness (sent vs due) at 1k, 5k and 20k
scheduled requests a second, and a 500 requests/s log at --speed 4, against the null endpoint
(a store that answers at once, so what is measured is the client's scheduling).

    .venv/bin/python benchmarks/bench_replay.py [--seconds 5] [--repeats 3] [--executor local]

Each log is this tool's op-log of 4 KiB GETs over 10,000 keys in turn (no request waits for an
earlier one on its key); the replay creates the keys first. Prints, per rate, the medians over
the repeats of lateness p50 and p99, the share sent over 10 ms late, how many waited for a free
slot, and the rate sent over the rate scheduled.
"""

from __future__ import annotations

import argparse
import asyncio
import socket
import statistics
import tempfile
import time
from pathlib import Path

from s3dlio_ray._internal.lab import null_endpoint
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.storage.oplog import OpLog
from s3dlio_ray._internal.storage.s3.client import RequestRecord
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

KEYS = 10_000
CREDENTIALS = StaticCredentials("bench", "bench-secret")


def gets_log(folder: Path, per_s: float, seconds: float) -> Path:
    log = OpLog(folder / f"gets-{int(per_s)}.tsv.zst")
    start = 1_790_000_000_000_000_000
    for i in range(int(per_s * seconds)):
        at = start + int(i / per_s * 1e9)
        resource = f"s3://src/k{i % KEYS:06d}"
        log.record(
            RequestRecord("GetObject", resource, "http://h:1", at, None, at + 1, 4096, 1, "")
        )
    log.close()
    return log.path


def replay(log: Path, endpoint: str, speed: float, executor: str) -> dict[str, float]:
    values = {
        "name": "replay",
        "phases": ["replay", "cleanup"],
        "replay_logs": [str(log)],
        "speed": speed,
        "executor": executor,
        "verify": False,
        "metrics_port": "off",
        "measure_floors": False,
    }
    settings = load_settings(values, environ={})
    result = asyncio.run(execute(plan_run(settings, (endpoint,), CREDENTIALS)))
    if not result.ok:
        raise SystemExit(f"replay failed: {result.error}")
    phase = next(p for p in result.phases if p.phase == "replay")
    loop = phase.open_loop
    assert loop is not None and phase.replay is not None
    scheduled = sum(phase.replay.planned.values()) / max(phase.replay.span_s, 1e-9)
    return {
        "p50_ms": loop.lateness.percentile(0.5) * 1e3,
        "p99_ms": loop.lateness.percentile(0.99) * 1e3,
        "behind": loop.behind_share,
        "capped": loop.capped,
        "sent_per_s": phase.ops_per_s,
        "ratio": phase.ops_per_s / scheduled,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--executor", default="local", choices=("local", "ray"))
    args = parser.parse_args()
    port, server = null_endpoint.launch("4KiB")
    endpoint = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            if server.poll() is not None or time.monotonic() > deadline:
                raise SystemExit("the null endpoint did not start")
            time.sleep(0.1)
        with tempfile.TemporaryDirectory() as folder:
            cases = [(rate, 1.0, rate) for rate in (1_000, 5_000, 20_000)]
            cases.append((500, 4.0, 2_000))
            for logged, speed, scheduled in cases:
                log = gets_log(Path(folder), logged, args.seconds * speed)
                runs = [replay(log, endpoint, speed, args.executor) for _ in range(args.repeats)]
                median = {k: statistics.median(r[k] for r in runs) for k in runs[0]}
                print(
                    f"log {logged}/s x{speed:g} = {scheduled}/s scheduled ({args.executor}): "
                    f"lateness p50 {median['p50_ms']:.2f} ms p99 {median['p99_ms']:.2f} ms, "
                    f"behind {100 * median['behind']:.1f}%, capped {median['capped']:.0f}, "
                    f"sent {median['sent_per_s']:.0f}/s = {median['ratio']:.3f} of scheduled",
                    flush=True,
                )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()

"""A small job's wall time, the command line's own: a one-file `s3dlio-ray cp` with the default
`executor: auto` (in this process when no Ray cluster runs) beside `--executor ray` (a local Ray
started for it), against the embedded S3 endpoint, each in a fresh process.

    .venv/bin/python benchmarks/bench_small_job.py [--rounds 3] [--size-mib 8]

Prints each executor's wall times, the medians and ray's over auto's.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import boto3

from s3dlio_ray._internal.storage.embedded import EMBEDDED_CREDENTIALS, EmbeddedS3

TOOL = str(Path(sys.executable).with_name("s3dlio-ray"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--size-mib", type=int, default=8)
    args = parser.parse_args()
    keys = EMBEDDED_CREDENTIALS
    with EmbeddedS3() as store, tempfile.TemporaryDirectory() as folder:
        env = {
            **os.environ,
            "AWS_ACCESS_KEY_ID": keys.access_key_id,
            "AWS_SECRET_ACCESS_KEY": keys.secret_access_key,
            "RAY_ADDRESS": "local",
        }
        boto3.client(
            "s3",
            endpoint_url=store.url,
            aws_access_key_id=keys.access_key_id,
            aws_secret_access_key=keys.secret_access_key,
            region_name="us-east-1",
        ).create_bucket(Bucket="bench-small-job")
        source = Path(folder) / "model.pt"
        source.write_bytes(os.urandom(args.size_mib << 20))
        times: dict[str, list[float]] = {}
        for executor in ("auto", "ray"):
            for round_ in range(args.rounds):
                started = time.perf_counter()
                done = subprocess.run(
                    [
                        TOOL,
                        "cp",
                        str(source),
                        f"s3://bench-small-job/{executor}-{round_}/",
                        "--endpoint",
                        store.url,
                        "--executor",
                        executor,
                        "--metrics-port",
                        "off",
                        "--quiet",
                        "--output",
                        str(Path(folder) / f"{executor}-{round_}.json"),
                    ],
                    env=env,
                    capture_output=True,
                    text=True,
                )
                if done.returncode != 0:
                    sys.exit(done.stdout + done.stderr)
                times.setdefault(executor, []).append(time.perf_counter() - started)
        for executor, walls in times.items():
            shown = " ".join(f"{t:.2f}" for t in walls)
            print(f"{executor:>5}: {shown} s, median {statistics.median(walls):.2f} s")
        ratio = statistics.median(times["ray"]) / statistics.median(times["auto"])
        print(f"ray / auto: {ratio:.1f}x")


if __name__ == "__main__":
    main()

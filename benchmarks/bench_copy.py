"""File transfers beside the peers: a folder uploaded to a prefix and downloaded back, by this
tool (`s3dlio_ray.copy`, one local engine), the s3dlio wheel (`upload`, `download`) and
s3transfer (`upload_file`, `download_file` on a TransferManager), against the same endpoint.

    .venv/bin/python benchmarks/bench_copy.py [--rounds 3] [--concurrency 16] \
        [--endpoints null,moto] [--sets small,large] [--clients engine,s3dlio,...]

Sets: `small` (512 files of 128 KiB: an image dataset's samples), `large` (4 files of 64 MiB). Each
measurement runs in a fresh process (upload, then download into an empty folder) and reports its
wall time and its own user + system CPU (every thread: s3dlio's runtime and s3transfer's pool run
in it, and so does this tool's engine, `executor: local`). `null` is the null endpoint
(lab/null_endpoint.py: drains uploads, lists and serves the set's objects: the clients' own
ceiling); `moto` stores what it is sent. `engine-inline` is this tool with every file read and
write done on the event loop instead of in a thread (file_io.THREAD_BYTES: the choice measured).
Prints per endpoint, set, op and client the medians over the rounds: GB/s, files/s, CPU s/GB, and
the ratio of GB/s over s3dlio's.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_transfer import CREDENTIALS, boto3_client, cpu_seconds

from s3dlio_ray._internal.lab import null_endpoint

SETS = {"small": (512, 128 * 1024), "large": (4, 64 * 1024 * 1024)}
CLIENTS = ("engine", "engine-inline", "s3dlio", "s3transfer")


def make_set(root: Path, files: int, size: int) -> None:
    root.mkdir(parents=True)
    block = os.urandom(size)
    for index in range(files):
        (root / null_endpoint.listed_name(index)).write_bytes(block)


def engine(endpoint: str, source: Path, bucket: str, target: Path, concurrency: int, inline: bool):
    import s3dlio_ray
    import s3dlio_ray._api  # imported here, not in the timed call (the package imports it lazily)
    from s3dlio_ray._internal.storage import files as file_io

    if inline:
        file_io.THREAD_BYTES = 1 << 62
    common = {
        "endpoint": endpoint,
        "executor": "local",
        "recursive": True,
        "concurrency": concurrency,
        "metrics_port": "off",
    }

    def up() -> None:
        report = s3dlio_ray.copy(str(source), f"s3://{bucket}/set/", **common)
        assert report.ok, report.error

    def down() -> None:
        report = s3dlio_ray.copy(f"s3://{bucket}/set/", str(target), **common)
        assert report.ok, report.error

    return up, down


def s3dlio_client(endpoint: str, source: Path, bucket: str, target: Path, concurrency: int):
    import s3dlio

    s3dlio.configure_s3(endpoint_url=endpoint, region="us-east-1")
    return (
        lambda: s3dlio.upload([f"{source}/*"], f"s3://{bucket}/set/", max_in_flight=concurrency),
        lambda: s3dlio.download(f"s3://{bucket}/set/", str(target), max_in_flight=concurrency),
    )


def s3transfer_client(endpoint: str, source: Path, bucket: str, target: Path, concurrency: int):
    from s3transfer.manager import TransferConfig, TransferManager

    client = boto3_client(endpoint, concurrency)
    config = TransferConfig(max_request_concurrency=concurrency)

    def up() -> None:
        with TransferManager(client, config) as manager:
            for path in sorted(source.iterdir()):
                manager.upload(str(path), bucket, f"set/{path.name}")

    def down() -> None:
        target.mkdir(parents=True, exist_ok=True)
        listed = client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix="set/")
        keys = [o["Key"] for page in listed for o in page.get("Contents", [])]
        with TransferManager(client, config) as manager:
            for key in keys:
                if not key.endswith(".json"):
                    manager.download(bucket, key, str(target / key.removeprefix("set/")))

    return up, down


def worker(args: argparse.Namespace) -> None:
    """One client's upload then download, timed apart; prints a JSON line."""
    source, target = Path(args.source), Path(args.target)
    if args.client in ("engine", "engine-inline"):
        up, down = engine(
            args.endpoint, source, args.bucket, target, args.concurrency, args.client != "engine"
        )
    elif args.client == "s3dlio":
        up, down = s3dlio_client(args.endpoint, source, args.bucket, target, args.concurrency)
    else:
        up, down = s3transfer_client(args.endpoint, source, args.bucket, target, args.concurrency)
    measured = {}
    for op, call in (("upload", up), ("download", down)):
        cpu0, t0 = cpu_seconds(), time.perf_counter()
        call()
        measured[op] = (time.perf_counter() - t0, cpu_seconds() - cpu0)
    print(json.dumps(measured))


def start_endpoint(kind: str, files: int, size: int) -> tuple[str, subprocess.Popen]:
    if kind == "null":
        port, process = null_endpoint.launch(str(size), "--listed", str(files))
    else:
        from s3dlio_ray._internal.storage.embedded import free_port

        port = free_port()
        command = [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)]
        process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            boto3_client(url, 1).create_bucket(Bucket="bench")
            return url, process
        except Exception:
            time.sleep(0.1)
    raise RuntimeError(f"{kind} endpoint did not start")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--endpoints", default="null,moto")
    parser.add_argument("--sets", default="small,large")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    for name in ("client", "endpoint", "bucket", "source", "target"):
        parser.add_argument(f"--{name}", help=argparse.SUPPRESS)
    args = parser.parse_args()
    os.environ.update(CREDENTIALS)
    if args.worker:
        worker(args)
        return
    work = Path(tempfile.mkdtemp(prefix="bench-copy-"))
    rows: dict[tuple[str, str, str, str], list[tuple[float, float]]] = {}
    try:
        for set_name in args.sets.split(","):
            files, size = SETS[set_name]
            source = work / set_name
            make_set(source, files, size)
            for kind in args.endpoints.split(","):
                url, process = start_endpoint(kind, files, size)
                try:
                    for _ in range(args.rounds):
                        for client in args.clients.split(","):
                            target = work / "down"
                            shutil.rmtree(target, ignore_errors=True)
                            done = subprocess.run(
                                [sys.executable, __file__, "--worker", "--client", client,
                                 "--endpoint", url, "--bucket", "bench", "--source", str(source),
                                 "--target", str(target), "--concurrency", str(args.concurrency)],
                                capture_output=True, text=True, timeout=900,
                            )  # fmt: skip
                            if done.returncode != 0:
                                print(f"{kind} {set_name} {client}: failed: {done.stderr[-800:]}")
                                continue
                            measured = json.loads(done.stdout.strip().splitlines()[-1])
                            for op, pair in measured.items():
                                rows.setdefault((kind, set_name, op, client), []).append(pair)
                finally:
                    process.terminate()
                    process.wait()
    finally:
        shutil.rmtree(work, ignore_errors=True)
    print("| endpoint | set | op | client | GB/s | files/s | CPU s/GB | ratio |")
    print("|---|---|---|---|---|---|---|---|")
    for (kind, set_name, op, client), pairs in sorted(rows.items()):
        files, size = SETS[set_name]
        wall = statistics.median(w for w, _ in pairs)
        cpu = statistics.median(c for _, c in pairs)
        gbps = files * size / wall / 1e9
        peer = rows.get((kind, set_name, op, "s3dlio"))
        ratio = gbps / (files * size / statistics.median(w for w, _ in peer) / 1e9) if peer else 0
        print(
            f"| {kind} | {set_name} | {op} | {client} | {gbps:.2f} | {files / wall:.0f} | "
            f"{cpu / (files * size / 1e9):.2f} | {ratio:.2f} |"
        )


if __name__ == "__main__":
    main()

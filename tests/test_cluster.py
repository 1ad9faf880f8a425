"""The Ray layer on a real three-node cluster (ray.cluster_utils) against a real moto server."""

from __future__ import annotations

import asyncio
import json
import shutil
import subprocess
import time
import urllib.parse
import urllib.request
import uuid

import pytest
from conftest import TEST_CREDENTIALS
from proxy import TcpProxy

from s3dlio_ray.cluster.aggregate import by_node
from s3dlio_ray.config import load_settings
from s3dlio_ray.embedded import free_port
from s3dlio_ray.launch import execute
from s3dlio_ray.report import write_json
from s3dlio_ray.workload import object_keys, run_prefix

KIB = 1024


def settings_for(bucket: str, **overrides):
    values = {
        "bucket": bucket,
        "run_id": f"t-{uuid.uuid4().hex[:8]}",
        "metrics_port": "off",
        "phases": "put,get",
        "objects": 30,
        "object_size": "256KiB",
    }
    values.update(overrides)
    return load_settings("configs/quick.yaml", values, environ={})


def stored_objects(boto3_s3, bucket: str, prefix: str) -> dict[str, int]:
    pages = boto3_s3.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix)
    return {o["Key"]: o["Size"] for page in pages for o in page.get("Contents", [])}


def test_every_node_transfers_and_the_bytes_add_up(ray_cluster, moto_url, boto3_s3, bucket):
    settings = settings_for(bucket)
    result = asyncio.run(execute(settings, moto_url, TEST_CREDENTIALS))
    assert result.ok, result.error
    assert len(result.nodes) == 3 and result.actors == 3
    put, get = result.phases
    put_nodes = by_node(result.breakdown["put"])
    assert set(put_nodes) == set(result.nodes)
    assert all(stats.ops > 0 for stats in put_nodes.values())
    assert sum(s.bytes for s in put_nodes.values()) == put.stats.bytes == 30 * 256 * KIB
    stored = stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id))
    assert sorted(stored) == object_keys(settings.prefix, settings.run_id, 30)
    assert sum(stored.values()) == put.stats.bytes
    assert get.verified == 30 and get.verify_failures == 0
    assert sum(s.bytes for s in by_node(result.breakdown["get"]).values()) == get.stats.bytes
    assert result.gathers >= 0 and result.gather_cpu_s < 1.0


@pytest.fixture(scope="module")
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
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={folder / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    # Ready only once it has tried the (not yet listening) target: its first scrape comes a few
    # seconds after start, and a short run must not fall into that gap.
    while time.monotonic() < deadline:
        try:
            if query(url, "up", time.time()):
                break
        except OSError:
            pass
        time.sleep(0.2)
    else:
        process.kill()
        pytest.fail("prometheus did not start scraping within 30 s")
    yield url, target
    process.terminate()
    process.wait()


def query(url: str, expression: str, at: float) -> list[dict]:
    params = {"query": expression, "time": f"{at:.3f}"}
    with urllib.request.urlopen(f"{url}/api/v1/query?{urllib.parse.urlencode(params)}") as r:
        return json.loads(r.read())["data"]["result"]


def test_prometheus_scrapes_per_node_series_that_match_the_result(
    ray_cluster, prometheus, moto_url, bucket, tmp_path
):
    prom_url, metrics_port = prometheus
    host, port = moto_url.removeprefix("http://").split(":")
    settings = settings_for(
        bucket,
        objects=60,
        object_size="64KiB",
        concurrency=1,
        metrics_port=metrics_port,
        metrics_linger_s=4,
        phases="put,get,cleanup",
    )

    async def main():
        proxy = await TcpProxy(host, int(port), response_delay_s=0.15).start()
        try:
            return await execute(settings, proxy.url, TEST_CREDENTIALS)
        finally:
            await proxy.close()

    started = time.time()
    result = asyncio.run(main())
    ended = time.time()
    assert result.ok, result.error
    saved = json.loads(write_json(result, tmp_path / "result.json").read_text())
    put_bytes = saved["phases"][0]["bytes"]

    # After the linger the target is gone and Prometheus marks its series stale: read them as
    # they were during the linger, when the final values were served.
    final = ended - 1.0
    series = query(prom_url, 's3dlio_ray_bytes_total{op="put"}', at=final)
    assert {s["metric"]["node"] for s in series} == set(result.nodes) and len(series) == 3
    assert sum(float(s["value"][1]) for s in series) == put_bytes
    get_series = query(prom_url, 's3dlio_ray_bytes_total{op="get"}', at=final)
    assert sum(float(s["value"][1]) for s in get_series) == saved["phases"][1]["bytes"]
    # It was watched while it ran, not only at the end: the scraped total grew during the run.
    params = urllib.parse.urlencode(
        {
            "query": 'sum(s3dlio_ray_bytes_total{op="put"})',
            "start": f"{started:.3f}",
            "end": f"{final:.3f}",
            "step": "0.5",
        }
    )
    with urllib.request.urlopen(f"{prom_url}/api/v1/query_range?{params}") as response:
        points = json.loads(response.read())["data"]["result"][0]["values"]
    seen = sorted({float(v) for _, v in points})
    assert seen[-1] == put_bytes and len(seen) >= 3, seen
    info = query(prom_url, "s3dlio_ray_run_info", at=final)
    assert info[0]["metric"]["run_id"] == settings.run_id
    assert "secret" not in json.dumps(info).lower()
    p99 = query(
        prom_url,
        "histogram_quantile(0.99, sum by (le) "
        '(s3dlio_ray_request_latency_seconds_bucket{op="get"}))',
        at=final,
    )
    assert float(p99[0]["value"][1]) >= 0.15
    actors = query(prom_url, "s3dlio_ray_actors", at=final)
    assert {s["metric"]["node"] for s in actors} == set(result.nodes)


def test_a_node_removed_during_put_loses_no_key_and_counts_none_twice(
    ray_cluster, moto_url, boto3_s3, bucket
):
    doomed = ray_cluster.add_node(num_cpus=1)
    ray_cluster.wait_for_nodes()
    settings = settings_for(bucket, objects=120, object_size="32KiB", concurrency=2, phases="put")
    host, port = moto_url.removeprefix("http://").split(":")

    async def main():
        proxy = await TcpProxy(host, int(port), response_delay_s=0.1).start()
        try:
            run = asyncio.ensure_future(execute(settings, proxy.url, TEST_CREDENTIALS))
            await asyncio.sleep(2.0)
            assert not run.done()
            await asyncio.get_running_loop().run_in_executor(None, ray_cluster.remove_node, doomed)
            return await run
        finally:
            await proxy.close()

    result = asyncio.run(main())
    put = result.phases[0]
    keys = object_keys(settings.prefix, settings.run_id, 120)
    stored = stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id))
    # Every key is either stored or listed as failed, never both, never neither.
    assert set(stored) | set(put.failed) == set(keys)
    assert not set(stored) & set(put.failed)
    assert put.stats.ops == len(stored) and put.stats.bytes == sum(stored.values())
    assert put.stats.ops + len(put.failed) == 120
    assert result.actors == 4 and len(result.breakdown["put"]) >= 3
    assert sum(p.result.stats.ops for p in result.breakdown["put"]) == put.stats.ops

"""The Ray layer on a real three-node cluster (ray.cluster_utils) against a real moto server."""

from __future__ import annotations

import asyncio
import json
import shutil
import statistics
import urllib.request

import pytest
from conftest import TEST_CREDENTIALS, server_process, settings_for, stored_objects
from prometheus_client.parser import text_string_to_metric_families
from proxy import TcpProxy

from s3dlio_ray._internal.model.keys import KeyRange, run_prefix
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.storage.embedded import free_port

KIB = 1024


def test_every_node_transfers_and_the_bytes_add_up(ray_cluster, moto_url, boto3_s3, bucket):
    settings = settings_for(bucket)
    result = asyncio.run(execute(plan_run(settings, (moto_url,), TEST_CREDENTIALS)))
    assert result.ok, result.error
    assert len(result.cluster.nodes) == 3 and result.cluster.actors == 3
    put, get = result.phases
    assert set(put.nodes) == set(result.cluster.nodes)
    assert all(node.objects > 0 for node in put.nodes.values())
    assert sum(n.bytes for n in put.nodes.values()) == put.stats.bytes == 30 * 256 * KIB
    assert sum(a.summary.bytes for a in put.actors) == put.stats.bytes
    stored = stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id))
    assert sorted(stored) == list(KeyRange.of(settings.prefix, settings.run_id, 30))
    assert sum(stored.values()) == put.stats.bytes
    assert get.verified == 30 and get.verify_failures == 0
    assert sum(n.bytes for n in get.nodes.values()) == get.stats.bytes
    assert result.cluster.driver_gather_cpu_s < 1.0


def test_prometheus_scrapes_per_node_series_that_match_the_result(scraped_run):
    run = scraped_run
    put_bytes = run.saved["phases"][0]["bytes"]
    series = run.query('s3dlio_ray_bytes_total{op="put"}')
    assert {s["metric"]["node"] for s in series} == set(run.result.cluster.nodes) and len(
        series
    ) == 3
    assert sum(float(s["value"][1]) for s in series) == put_bytes
    get_series = run.query('s3dlio_ray_bytes_total{op="get"}')
    assert sum(float(s["value"][1]) for s in get_series) == run.saved["phases"][1]["bytes"]
    # It was watched while it ran, not only at the end: the scraped total grew during the run.
    points = run.query_range('sum(s3dlio_ray_bytes_total{op="put"})')[0]["values"]
    seen = sorted({float(v) for _, v in points})
    assert seen[-1] == put_bytes and len(seen) >= 3, seen
    info = run.query("s3dlio_ray_run_info")
    assert info[0]["metric"]["run_id"] == run.result.run_id
    assert "secret" not in json.dumps(info).lower()
    buckets = 's3dlio_ray_request_latency_seconds_bucket{op="get"}'
    p99 = run.query(f"histogram_quantile(0.99, sum by (le) ({buckets}))")
    assert float(p99[0]["value"][1]) >= 0.15
    actors = run.query("s3dlio_ray_actors")
    assert {s["metric"]["node"] for s in actors} == set(run.result.cluster.nodes)
    # training: AU per node while the train phase ran (0.15 s reads, 0.1 s compute: ~40%)
    au = run.query_range("s3dlio_ray_accelerator_utilization")
    assert {s["metric"]["node"] for s in au} == set(run.result.cluster.nodes)
    values = [float(v) for s in au for _, v in s["values"]]
    assert all(0 <= v <= 1 for v in values) and 0.15 < statistics.median(values) < 0.7, values
    samples = run.query("sum(s3dlio_ray_samples_total)")
    assert float(samples[0]["value"][1]) == run.result.phase("train").training.samples == 60


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
            run = asyncio.ensure_future(execute(plan_run(settings, (proxy.url,), TEST_CREDENTIALS)))
            await asyncio.sleep(2.0)
            assert not run.done()
            await asyncio.get_running_loop().run_in_executor(None, ray_cluster.remove_node, doomed)
            return await run
        finally:
            await proxy.close()

    result = asyncio.run(main())
    put = result.phases[0]
    keys = list(KeyRange.of(settings.prefix, settings.run_id, 120))
    stored = stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id))
    # Every key is either stored or listed as failed, never both, never neither.
    assert set(stored) | set(put.failed) == set(keys)
    assert not set(stored) & set(put.failed)
    assert put.stats.ops == len(stored) and put.stats.bytes == sum(stored.values())
    assert put.stats.ops + len(put.failed) == 120
    assert result.cluster.actors == 4 and len(put.actors) >= 3
    assert sum(a.summary.objects for a in put.actors) == put.stats.ops


@pytest.fixture
def pushgateway():
    """A real Pushgateway (Debian package prometheus-pushgateway) on loopback."""
    binary = shutil.which("prometheus-pushgateway")
    if binary is None:
        pytest.skip("prometheus-pushgateway is not installed (.ci/run installs it)")
    url = f"http://127.0.0.1:{free_port()}"
    with server_process(
        [binary, f"--web.listen-address={url.removeprefix('http://')}"],
        lambda: urllib.request.urlopen(f"{url}/-/ready", timeout=1).status == 200,
        "prometheus-pushgateway",
    ):
        yield url


def test_final_metrics_are_pushed_to_a_pushgateway(ray_cluster, pushgateway, moto_url, bucket):
    settings = settings_for(
        bucket, objects=9, object_size="64KiB", metrics_port=0, pushgateway_url=pushgateway
    )
    result = asyncio.run(execute(plan_run(settings, (moto_url,), TEST_CREDENTIALS)))
    assert result.ok, result.error
    with urllib.request.urlopen(f"{pushgateway}/metrics") as response:
        text = response.read().decode()
    pushed = {
        (s.name, s.labels.get("node"), s.labels.get("op")): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
        if s.labels.get("job") == "s3dlio-ray"
    }
    put_total = sum(
        v for (name, _, op), v in pushed.items() if name == "s3dlio_ray_bytes_total" and op == "put"
    )
    assert put_total == result.phases[0].stats.bytes == 9 * 64 * 1024
    assert {node for (name, node, _) in pushed if name == "s3dlio_ray_bytes_total"} == set(
        result.cluster.nodes
    )

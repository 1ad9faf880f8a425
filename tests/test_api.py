"""The Python API as a script, a notebook or a Ray program uses it: names, runs, handles, and
what it never imports."""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from conftest import ROOT, cli_env, stored_objects, valid_result

import s3dlio_ray
from s3dlio_ray._internal.model.vocabulary import EndedBy, Phase

QUICK = ROOT / "configs" / "quick.yaml"


NO_RAY = """
import sys
import s3dlio_ray
from s3dlio_ray._cli import main
assert "ray" not in sys.modules, "import"
s3dlio_ray.load_settings("configs/quick.yaml", objects=3)
for argv in (["--help"], ["run", "--help"]):
    try:
        main(argv)
    except SystemExit:
        pass
assert main(["report", "tests/data/result-v1.json", "--html", sys.argv[1] + "/v1.html"]) == 0
assert main(["compare", "tests/data/result-v1.json", "tests/data/result-v1.json"]) == 0
assert "ray" not in sys.modules, "report, compare, --help"
report = s3dlio_ray.run("configs/quick.yaml", endpoint=sys.argv[2], executor="local",
                        objects=4, object_size="64KiB", metrics_port="off")
assert report.ok, report.error
assert "ray" not in sys.modules, "executor: local"
print("no ray")
"""


def test_report_compare_help_and_a_local_run_never_import_ray(moto_url, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", NO_RAY, str(tmp_path), moto_url],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 0 and "no ray" in proc.stdout, proc.stdout + proc.stderr


def local(moto_url: str, bucket: str, **overrides) -> dict:
    return {
        "endpoint": moto_url,
        "bucket": bucket,
        "executor": "local",
        "objects": 12,
        "object_size": "64KiB",
        "metrics_port": "off",
        **overrides,
    }


def test_run_answers_a_typed_report_that_writes_its_files(moto_url, bucket, credentials, tmp_path):
    report = s3dlio_ray.run(QUICK, **local(moto_url, bucket))
    assert report.ok and report.error is None
    put, get = report.phases
    assert (put.phase, get.phase) == (Phase.PUT, Phase.GET)
    assert put.objects == get.verified == 12 and put.gbps > 0 and get.latency.p99_s > 0
    result = report.result
    assert result.cluster.executor == "local" and result.cluster.actors == 1
    assert set(put.nodes) == set(result.cluster.nodes) and len(result.cluster.nodes) == 1
    assert sum(row.ops for row in result.timeseries if row.op == "put") == 12
    assert result.cleanup.deleted == 12
    written = report.write(tmp_path)
    assert [p.suffix for p in written] == [".json", ".csv", ".html"]
    assert valid_result(json.loads(written[0].read_text())) == result


def test_a_mapping_is_a_workload_and_bad_input_is_one_line(moto_url, bucket, credentials):
    with pytest.raises(s3dlio_ray.ConfigError, match=r"objects: expected an integer in 1\.\.") as e:
        s3dlio_ray.run({"objects": 0})
    assert "\n" not in str(e.value)
    settings = s3dlio_ray.load_settings({"objects": 3}, phases=["put", {"get": {"verify": False}}])
    assert settings.for_phase(1).verify is False and settings.for_phase(0).verify is True


def test_a_local_run_serves_metrics_while_it_goes(moto_url, bucket, credentials):
    ports = []
    handle = s3dlio_ray.start(
        QUICK,
        hooks=s3dlio_ray.Hooks(metrics=ports.append),
        **local(moto_url, bucket, metrics_port=0, duration_s=3, metrics_linger_s=0),
    )
    deadline = time.monotonic() + 20
    text = ""
    while "s3dlio_ray_bytes_total{" not in text and time.monotonic() < deadline:
        time.sleep(0.5)
        if ports:
            with urllib.request.urlopen(f"http://127.0.0.1:{ports[0]}/metrics") as response:
                text = response.read().decode()
    report = handle.wait(60)
    assert report.ok, report.error
    node = report.result.cluster.nodes[0]
    endpoint = report.result.endpoint
    assert f's3dlio_ray_bytes_total{{endpoint="{endpoint}",node="{node}",op="put"}}' in text
    assert 'executor="local"' in text


def test_stop_interrupts_the_run_and_cleanup_still_runs(moto_url, bucket, credentials, boto3_s3):
    progress = []
    handle = s3dlio_ray.start(
        QUICK,
        hooks=s3dlio_ray.Hooks(progress=progress.append),
        **local(moto_url, bucket, duration_s=60),
    )
    deadline = time.monotonic() + 30
    while not progress and time.monotonic() < deadline:
        time.sleep(0.1)
    started = time.monotonic()
    handle.stop()
    report = handle.wait(30)
    assert time.monotonic() - started < 10
    assert not report.ok and report.error.startswith("interrupted")
    assert [p.phase for p in report.phases] == [Phase.PUT]
    assert report.phases[0].ended_by == EndedBy.INTERRUPTED and report.phases[0].objects > 0
    prefix = f"{report.settings.prefix}/{report.settings.run_id}/"
    assert report.result.cleanup.deleted > 0 and stored_objects(boto3_s3, bucket, prefix) == {}


def test_inside_a_ray_program_it_joins_the_cluster_and_takes_only_free_cpus(
    ray_cluster, moto_url, bucket, credentials
):
    import ray

    @ray.remote(num_cpus=1)
    class Holder:
        def ready(self):
            return True

    holder = Holder.remote()
    ray.get(holder.ready.remote())
    try:
        report = s3dlio_ray.run(
            QUICK,
            endpoint=moto_url,
            bucket=bucket,
            objects=8,
            object_size="64KiB",
            metrics_port="off",
        )
    finally:
        ray.kill(holder)
        deadline = time.monotonic() + 10
        while ray.available_resources().get("CPU", 0) < 3 and time.monotonic() < deadline:
            time.sleep(0.05)
    assert report.ok, report.error
    cluster = report.result.cluster
    assert cluster.executor == "ray" and len(cluster.nodes) == 2 and cluster.actors == 2
    assert sum(p.objects for p in report.phases) == 16


def test_an_unreachable_pushgateway_is_a_warning_not_a_lost_result(
    moto_url, bucket, credentials, caplog
):
    report = s3dlio_ray.run(
        QUICK, **local(moto_url, bucket, metrics_port=0, pushgateway_url="http://127.0.0.1:9")
    )
    assert report.ok, report.error
    warnings = [r.getMessage() for r in caplog.records if r.levelname == "WARNING"]
    assert any("cannot push the final values to http://127.0.0.1:9" in w for w in warnings)


def test_a_run_that_writes_refuses_a_prefix_holding_anothers_objects(
    moto_url, bucket, credentials, boto3_s3
):
    boto3_s3.put_object(Bucket=bucket, Key="important/sub/b.bin", Body=b"theirs")
    with pytest.raises(s3dlio_ray.ConfigError, match="important/sub/ already holds objects"):
        s3dlio_ray.run(QUICK, **local(moto_url, bucket, prefix="important", run_id="sub"))
    assert stored_objects(boto3_s3, bucket, "important/", journal=True) == {
        "important/sub/b.bin": 6
    }


def test_a_busy_metrics_port_is_a_warning_and_the_run_goes_on(
    moto_url, bucket, credentials, caplog
):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        report = s3dlio_ray.run(QUICK, **local(moto_url, bucket, metrics_port=port))
    assert report.ok, report.error
    assert any(f"cannot serve on 127.0.0.1:{port}" in r.getMessage() for r in caplog.records)

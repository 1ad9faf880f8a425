"""The field's faults, one table: a fault-injecting proxy between the engines (Ray actors on the
suite's three nodes) and a real moto server. Each case checks what a user would: the exit code and
its one line, the result file, and the bucket afterwards (objects and multipart uploads)."""

from __future__ import annotations

import json
import uuid

import pytest
from conftest import incomplete_uploads, stored_objects, valid_result
from faults import FaultProxy, Rule

from s3dlio_ray._cli import main

OBJECTS = 4


def get(start: str = "any"):
    """GETs of the run's objects; `start`: "first" ranges, "middle" ranges, or any."""

    def when(request) -> bool:
        if request.method != "GET" or not request.of_an_object:
            return False
        return start == "any" or (start == "first") == (request.range_start == 0)

    return when


def put(request) -> bool:
    return request.method == "PUT" and request.of_an_object


def key_is(name: str):
    return lambda request: request.method in ("PUT", "POST") and name in request.target


CASES = {
    # fault: (rule, exit code, what the line or result must say)
    "slow responses": (Rule("slow", lambda r: True, times=0), 0, None),
    "reset mid-body": (Rule("reset", get(), nth=2), 0, None),
    "truncated body": (Rule("truncate", get(), nth=3), 0, None),
    "short first range": (Rule("short", get("first")), 0, None),
    "short middle range": (Rule("short", get("middle")), 0, None),
    "503 on PUTs": (Rule("503", put, nth=2, times=3), 0, None),
    "stall": (Rule("stall", get(), nth=2), 0, None),
    "byte flip": (Rule("flip", get("first")), 1, "byte 0 differs"),
    "403 on one key": (Rule("403", key_is("obj-00000002")), 1, "AccessDenied"),
    "endpoint killed": (Rule("kill", put, nth=6), 1, "cannot connect"),
}


@pytest.mark.parametrize("case", list(CASES))
def test_a_fault_leaves_a_result_and_nothing_behind(
    case, ray_cluster, moto_url, boto3_s3, bucket, credentials, tmp_path, capsys, caplog
):
    rule, code, says = CASES[case]
    run_id = f"f-{uuid.uuid4().hex[:6]}"
    out = tmp_path / "r.json"
    with FaultProxy(moto_url, [rule]) as proxy:
        returned = main(
            [
                "run",
                "configs/quick.yaml",
                "--endpoint",
                proxy.url,
                "--bucket",
                bucket,
                "--run-id",
                run_id,
                "--objects",
                str(OBJECTS),
                "--object-size",
                "11MiB",
                "--part-size-mb",
                "5",
                "--concurrency",
                "2",
                "--timeout",
                "2",
                "--set",
                "max_attempts=4",
                "--metrics-port",
                "off",
                "--output",
                str(out),
                "--quiet",
                "--ray-address",
                ray_cluster.address,
            ]
        )
        applied = list(proxy.applied)
    stdout, stderr = capsys.readouterr()
    assert returned == code, stdout + stderr
    assert applied, "the fault never happened"
    assert "Traceback" not in stdout + stderr + caplog.text
    assert "never retrieved" not in stderr + caplog.text
    result = valid_result(json.loads(out.read_text()))
    put, *rest = result.phases
    prefix = f"s3dlio-ray/{run_id}/"
    if code == 0:
        assert result.ok and rest[0].verified == OBJECTS and put.objects == OBJECTS
        assert case == "slow responses" or sum(p.stats.retries for p in result.phases) >= 1
    else:
        errors = [x for x in stderr.splitlines() if x.startswith("s3dlio-ray: error: ")]
        assert len(errors) <= 1 and not result.ok
        assert says in (errors[0] if errors else json.dumps(result.to_dict()))
    if case == "endpoint killed":
        # Its cleanup could not reach the endpoint either: what is left, and how to remove it.
        assert put.ended_by == "error" and result.cleanup is None
        assert "not cleaned up" in stdout
        assert stored_objects(boto3_s3, bucket, prefix, journal=True) or incomplete_uploads(
            boto3_s3, bucket
        )
        command = stdout.split("remove it with: s3dlio-ray ")[1].split()
        command[command.index("--endpoint") + 1] = moto_url
        assert main(command) == 0, capsys.readouterr()
    assert stored_objects(boto3_s3, bucket, prefix, journal=True) == {}
    assert incomplete_uploads(boto3_s3, bucket) == []

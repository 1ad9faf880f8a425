"""The run plan decides what the settings leave open, once; every consumer reads it, and no
other module derives it."""

from __future__ import annotations

import asyncio
import re
import socket
from pathlib import Path

import pytest
from conftest import ROOT, TEST_CREDENTIALS, settings_for

from s3dlio_ray._internal.execution.build import build_client
from s3dlio_ray._internal.model.copy_plan import copy_workload
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.run.launch import execute, run_info
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings

RUN_ID = re.compile(r"^\d{8}-\d{6}-[0-9a-f]{6}$")


def test_what_the_settings_leave_open_is_decided_once(monkeypatch):
    def getaddrinfo(host, port, type=0):
        return [(socket.AF_INET, type, 6, "", (a, port)) for a in ("52.0.0.1", "52.0.0.2")]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    settings = load_settings(
        {
            "endpoint": "https://s3.eu-west-1.amazonaws.com",
            "resolve_host": True,
            "region": "eu-west-1",
            "op_log": "ops.tsv.zst",
        },
        environ={},
    )
    plan = plan_run(settings)
    assert RUN_ID.match(plan.run_id) and not plan.run_id_given
    assert plan.settings.run_id == plan.run_id and settings.run_id is None
    assert isinstance(plan.seed, int) and not plan.seed_given
    assert plan.bucket == f"s3dlio-ray-{plan.run_id}"
    assert plan.settings.op_log == str(Path.cwd() / "ops.tsv.zst")
    spread = plan.access.endpoints
    assert [e.label for e in spread] == ["https://52.0.0.1:443", "https://52.0.0.2:443"]
    # Still AWS, still verified under its name: what resolving to addresses used to lose.
    assert all(e.is_aws and e.host == "s3.eu-west-1.amazonaws.com" for e in spread)
    assert plan.access.region == "eu-west-1" and plan.access.credentials is None
    assert plan.credentials_source.startswith("botocore's chain")
    assert "secret" not in repr(plan).lower() and plan.run_id in repr(plan)
    (only,) = plan.configurations
    assert only.name is None and only.first and only.last
    assert [p.verify for p in only.phases] == [True, True, True]


def test_what_the_user_gave_is_kept():
    settings = settings_for("given", run_id="mine", seed=7, aws_profile="lab")
    plan = plan_run(settings, ("http://127.0.0.1:9",), None)
    assert (plan.run_id, plan.run_id_given, plan.seed, plan.seed_given) == ("mine", True, 7, True)
    assert plan.bucket == "given" and plan.credentials_source == "AWS profile lab"
    assert [e.url for e in plan.access.endpoints] == ["http://127.0.0.1:9"]


def test_each_configuration_and_each_of_its_phases_is_planned():
    settings = load_settings(
        {
            "endpoint": "http://127.0.0.1:9",
            "phases": ["put", {"get": {"verify": False}}, "cleanup"],
            "configurations": [{"name": "a", "concurrency": 4}, {"name": "b", "concurrency": 8}],
        },
        environ={},
    )
    plan = plan_run(settings, None, TEST_CREDENTIALS)
    a, b = plan.configurations
    assert (a.name, a.first, a.last, b.name, b.first, b.last) == (
        "a",
        True,
        False,
        "b",
        False,
        True,
    )
    assert a.settings.concurrency == 4 and b.settings.concurrency == 8
    assert [str(p) for p in a.settings.phase_names] == ["put", "get"]
    assert [str(p) for p in b.settings.phase_names] == ["put", "get", "cleanup"]
    assert [p.verify for p in b.phases] == [True, False, True]
    assert {c.settings.run_id for c in plan.configurations} == {plan.run_id}
    assert plan.credentials_source == "keys given to the run"
    assert a.copy is None and b.copy is None


def test_a_copy_is_planned_once_and_refused_before_anything_starts(tmp_path):
    (tmp_path / "set").mkdir()
    (tmp_path / "set" / "a.bin").write_bytes(b"a")
    settings = load_settings(
        copy_workload(str(tmp_path / "set"), "s3://data/set/"),
        {"endpoint": "http://127.0.0.1:9", "recursive": True},
        environ={},
    )
    (only,) = plan_run(settings).configurations
    assert only.copy is not None and only.copy.remote.bucket == "data" and not only.copy.single
    folder = load_settings(
        copy_workload(str(tmp_path / "set"), "s3://data/set/"),
        {"endpoint": "http://127.0.0.1:9"},
        environ={},
    )
    with pytest.raises(ConfigError, match="is a folder: add --recursive"):
        plan_run(folder)


DECIDED = {
    r"\bnew_run_id\(": "the run id",
    r"\brandbits\(": "the seed",
    r"f\"s3dlio-ray-\{": "the default bucket",
    r"\bresolve_region\(": "the region",
    r"\bspread_over_addresses\(": "the endpoints' addresses",
    r"\bEndpoint\.parse\(": "the endpoints",
}
ALLOWED = {
    "_internal/run/plan.py": set(DECIDED),
    # The settings' rules read the endpoints given to refuse plain http:// to AWS.
    "_internal/settings/rules.py": {r"\bEndpoint\.parse\("},
}


def test_no_other_module_derives_what_the_plan_decides():
    found = []
    for path in sorted((ROOT / "s3dlio_ray").rglob("*.py")):
        relative = str(path.relative_to(ROOT / "s3dlio_ray"))
        source = "\n".join(
            line for line in path.read_text().splitlines() if not line.lstrip().startswith("def ")
        )
        for pattern, what in DECIDED.items():
            if re.search(pattern, source) and pattern not in ALLOWED.get(relative, set()):
                found.append(f"{relative} derives {what}")
    assert found == []


@pytest.mark.integration
def test_every_consumer_reads_the_plan(moto_url, bucket):
    settings = settings_for(bucket, run_id=None, executor="local", objects=3, object_size="4KiB")
    plan = plan_run(settings, (moto_url,), TEST_CREDENTIALS)
    configuration = plan.configurations[0]
    assert run_info(plan, configuration.settings)["run_id"] == plan.run_id
    client = build_client(configuration.settings, plan.access)
    assert client.endpoint_urls == [e.label for e in plan.access.endpoints]
    asyncio.run(client.aclose())
    result = asyncio.run(execute(plan))
    assert result.ok, result.error
    assert (result.run_id, result.seed, result.bucket) == (plan.run_id, plan.seed, plan.bucket)
    assert result.endpoints == tuple(e.label for e in plan.access.endpoints)
    assert result.settings["run_id"] == plan.run_id

"""The public API is exactly `__all__`: no other public name, none of them a module, every
function callable in one process in any order of first use, and from a running event loop."""

from __future__ import annotations

import importlib
import inspect
import json
import pkgutil
import pydoc
import re
import subprocess
import sys
import types

import pytest
from conftest import ROOT, cli_env

import s3dlio_ray


def public_names() -> set[str]:
    """Every public name the package really holds once everything it has was loaded."""
    for name in s3dlio_ray.__all__:
        getattr(s3dlio_ray, name)
    for module in pkgutil.walk_packages(s3dlio_ray.__path__, "s3dlio_ray."):
        if not module.name.endswith("__main__"):
            importlib.import_module(module.name)
    return {name for name in vars(s3dlio_ray) if not name.startswith("_")}


def test_all_is_exactly_what_the_package_exposes_and_no_name_is_a_module():
    exposed = public_names()
    assert exposed == set(s3dlio_ray.__all__) - {"__version__"}
    modules = [
        name
        for name in s3dlio_ray.__all__
        if isinstance(getattr(s3dlio_ray, name), types.ModuleType)
    ]
    assert modules == []
    assert callable(s3dlio_ray.compare) and callable(s3dlio_ray.report)
    with pytest.raises(AttributeError):
        s3dlio_ray.execute  # noqa: B018


def test_help_shows_the_api_and_its_examples_not_internals():
    text = pydoc.render_doc(s3dlio_ray, renderer=pydoc.plaintext)
    description = text[text.index("DESCRIPTION") : text.index("PACKAGE CONTENTS")]
    for call in ("s3dlio_ray.run(", "s3dlio_ray.start(", "s3dlio_ray.compare(", "cleanup_run("):
        assert call in description
    contents = text[text.index("PACKAGE CONTENTS") : text.index("CLASSES")]
    assert [line.strip() for line in contents.splitlines()[1:] if line.strip()] == [
        "__main__",
        "_api",
        "_cli",
        "_entry",
        "_internal (package)",
    ]
    functions = text[text.index("FUNCTIONS") : text.index("\nVERSION")]
    exported = [n for n in s3dlio_ray.__all__ if inspect.isfunction(getattr(s3dlio_ray, n))]
    for name in exported:
        assert re.search(rf"\n    (async )?{name}\(", functions), name


FUNCTIONS = {
    "cleanup_run",
    "compare",
    "copy",
    "load_result",
    "load_settings",
    "replay",
    "report",
    "run",
    "run_async",
    "start",
}

USES = """
import asyncio, json, sys
from pathlib import Path
import s3dlio_ray

order, url, bucket, tmp = sys.argv[1], sys.argv[2], sys.argv[3], Path(sys.argv[4])
common = dict(endpoint=url, bucket=bucket, executor="local", metrics_port="off",
              objects=3, object_size="64KiB")
called = set()
old = "tests/data/result-v1.json"

def compare_and_report():
    called.update({"load_result", "compare", "report"})
    assert s3dlio_ray.load_result(old).phases
    assert s3dlio_ray.compare(old, old)
    assert s3dlio_ray.report(old, html=tmp / "old.html") == tmp / "old.html"

def run_and_write():
    called.update({"load_settings", "run", "run_async", "start"})
    settings = s3dlio_ray.load_settings("configs/quick.yaml", **common)
    report = s3dlio_ray.run(settings)
    assert report.ok, report.error
    written = report.write(tmp / "run")
    assert s3dlio_ray.compare(report.result, written[0])
    assert asyncio.run(s3dlio_ray.run_async(settings)).ok
    assert s3dlio_ray.start(settings).wait(60).ok
    assert "RunReport(ok=True" in repr(report) and len(repr(report)) < 400

def copy_and_clean_up():
    called.update({"copy", "cleanup_run"})
    (tmp / "files").mkdir()
    (tmp / "files" / "a.bin").write_bytes(b"a" * 1000)
    copied = s3dlio_ray.copy(str(tmp / "files"), f"s3://{bucket}/copied/", recursive=True,
                             endpoint=url, executor="local", metrics_port="off")
    assert copied.ok, copied.error
    left = s3dlio_ray.run("configs/quick.yaml", **{**common, "phases": "put"})
    assert s3dlio_ray.cleanup_run(left.result.run_id, endpoint=url, bucket=bucket).deleted == 3
    called.add("replay")
    logged = s3dlio_ray.run("configs/quick.yaml", **{**common, "op_log": str(tmp / "ops.tsv.zst")})
    assert logged.ok, logged.error
    replayed = s3dlio_ray.replay(*sorted(tmp.glob("ops-*.tsv.zst")), endpoint=url, bucket=bucket,
                                 executor="local", metrics_port="off")
    assert replayed.ok and replayed.result.phases[-1].by_op["GET"].objects == 3

steps = {"report": compare_and_report, "run": run_and_write, "copy": copy_and_clean_up}
for name in order.split(","):
    steps[name]()

async def inside_a_running_loop():
    # What a notebook does: the synchronous calls from a thread whose event loop runs.
    report = s3dlio_ray.run("configs/quick.yaml", **{**common, "phases": "put"})
    done = s3dlio_ray.cleanup_run(report.result.run_id, endpoint=url, bucket=bucket)
    assert done.deleted == 3

asyncio.run(inside_a_running_loop())
print(json.dumps(sorted(called)))
"""


@pytest.mark.parametrize("order", ["report,run,copy", "copy,run,report"])
def test_every_function_works_in_one_process_in_any_order(order, moto_url, bucket, tmp_path):
    proc = subprocess.run(
        [sys.executable, "-c", USES, order, moto_url, bucket, str(tmp_path)],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    called = set(json.loads(proc.stdout.strip().splitlines()[-1]))
    exported = {n for n in s3dlio_ray.__all__ if inspect.isfunction(getattr(s3dlio_ray, n))}
    assert exported == FUNCTIONS == called

"""The summary a person reads: every number whole at any terminal width, a phase's time and
bytes, objects/s, a mixed phase's operations, the unit they chose."""

from __future__ import annotations

import dataclasses
import io

import pytest
from conftest import recorded, result_of
from rich.console import Console

from s3dlio_ray._internal.model.results import PhaseResult, ShareResult
from s3dlio_ray._internal.model.units import rate_unit
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.reports.files import print_summary


def _mixed_result():
    by_op = {
        "get": recorded(600, 600 * 1_048_576, 0.02),
        "put": recorded(200, 200 * 1_048_576, 0.03),
        "stat": recorded(100, 0, 0.004),
        "delete": recorded(100, 0, 0.005),
    }
    total = recorded(1000, 800 * 1_048_576, 0.02)
    share = ShareResult(
        Phase.MIXED, 12.5, total, by_op=by_op, start_concurrency=16, final_concurrency=24
    )
    listing = ShareResult(Phase.LIST, 0.4, recorded(20_000, 0, 0.001))
    phases = (
        PhaseResult.merge(Phase.MIXED, 12.5, [("a0", "node-one", share)], {}),
        PhaseResult.merge(Phase.LIST, 0.4, [("a0", "node-one", listing)], {}),
    )
    result = result_of(*phases)
    cluster = dataclasses.replace(result.cluster, nodes=("node-one", "node-two"), actors=4)
    return dataclasses.replace(result, cluster=cluster)


def _printed(result, width: int, unit: str = "GB/s") -> str:
    out = io.StringIO()
    print_summary(result, Console(file=out, width=width), unit=rate_unit(unit))
    return out.getvalue()


@pytest.mark.parametrize("width", [80, 100, 140])
def test_no_number_is_cut_at_any_width(width):
    text = _printed(_mixed_result(), width)
    assert "…" not in text
    assert all(len(line) <= width for line in text.splitlines())
    assert "50000.0" in text, "20,000 listed objects in 0.4 s: objects/s, never 0.000 GB/s"
    if width < 140:
        assert "not shown at this width:" in text and "max ms" in text
        assert "│ seconds │" in text.replace("┃", "│"), "a phase's duration stays"


def test_a_phase_says_its_time_and_bytes_and_a_mixed_phase_each_operation():
    text = _printed(_mixed_result(), 160)
    mixed = next(line for line in text.splitlines() if "│ mixed" in line)
    assert "12.5" in mixed and "839 MB" in mixed and "16->24" in mixed
    for op, objects in (("get", 600), ("put", 200), ("stat", 100), ("delete", 100)):
        line = next(line for line in text.splitlines() if f"│   {op} " in line)
        assert f" {objects} " in line
    assert "concurrency: the in-flight limit when the phase started -> when it ended" in text


def test_rates_and_sizes_in_the_unit_asked_for():
    binary = _printed(_mixed_result(), 160, "binary")
    assert "GiB/s" in binary and "800 MiB" in binary
    mega = _printed(_mixed_result(), 160, "MB/s")
    mixed = next(line for line in mega.splitlines() if "│ mixed" in line)
    assert "MB/s" in mega and " 67.1 " in mixed, "839 MB over 12.5 s"


def test_a_run_id_used_again_never_overwrites_the_earlier_result(tmp_path):
    from s3dlio_ray import RunReport
    from s3dlio_ray._internal.settings.schema import Settings

    report = RunReport(Settings(), (_mixed_result(),))
    first = report.write(tmp_path / "run.json")
    earlier = first[0].read_text()
    second = report.write(tmp_path / "run.json")
    assert [p.name for p in first] == ["run.json", "run.csv", "run.html"]
    assert [p.name for p in second] == ["run-2.json", "run-2.csv", "run-2.html"]
    assert first[0].read_text() == earlier and all(p.exists() for p in second)

"""What a run leaves behind: CSV time series, HTML report (opened in Chromium), report, compare."""

from __future__ import annotations

import csv
import itertools
import json
import re

import jsonschema
import pytest
from conftest import ROOT, drawn, headless, recorded, result_of, run_cli

from s3dlio_ray._internal.model.results import PhaseResult, RunResult, result_schema
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.reports.compare import compare
from s3dlio_ray._internal.reports.files import write_csv
from s3dlio_ray._internal.reports.html import render_html


def test_result_files_follow_the_schema_and_round_trip(scraped_run):
    jsonschema.Draft202012Validator.check_schema(result_schema())
    jsonschema.validate(scraped_run.saved, result_schema())
    env = scraped_run.saved["environment"]
    assert env["versions"]["ray"] and env["cpus"] >= 1
    assert set(scraped_run.saved["cluster"]["node_cpus"]) == set(scraped_run.result.cluster.nodes)
    assert RunResult.from_json(scraped_run.result.to_json()) == scraped_run.result
    get = scraped_run.result.phase(Phase.GET)
    assert sum(a.summary.objects for a in get.actors) == get.objects
    assert [e.objects for e in get.endpoints.values()] == [get.objects]


def test_the_schema_refuses_a_broken_result(scraped_run):
    broken = json.loads(json.dumps(scraped_run.saved))
    broken["phases"][0]["objects"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, result_schema())


def test_time_series_has_a_row_per_second_per_node_and_adds_up(scraped_run, tmp_path):
    result = scraped_run.result
    path = write_csv(result, tmp_path / "series.csv")
    rows = list(csv.DictReader(path.open()))
    assert rows and set(rows[0]) == {
        "time",
        "t_s",
        "node",
        "op",
        "bytes",
        "ops",
        "errors",
        "gbps",
        "concurrency",
        "in_flight",
        "au",
        "event",
        "phase",
        "interval_s",
        "epoch",
        "cpu",
        "capacity_cores",
        "node_cpu",
        "loop_lag_ms",
        "ttfb_p50_ms",
        "throttles",
        "nic",
        "nic_gbps",
        "nic_utilization",
    }
    for phase in result.phases:
        mine = [r for r in rows if r["op"] == phase.phase]
        # The client's resources each second: its CPU, and the loopback NIC its connections
        # use (nic_gbps: 10 in this run's settings).
        assert all(r["cpu"] and r["nic"] == "lo" for r in mine), mine
        assert all(0 <= float(r["nic_utilization"]) < 1 for r in mine)
        assert {r["node"] for r in mine} == set(result.cluster.nodes)
        assert sum(int(r["bytes"]) for r in mine) == phase.stats.bytes
        assert sum(int(r["ops"]) for r in mine) == phase.objects
        for row in mine:
            interval = float(row["interval_s"])
            assert interval >= 0.5, "a short final interval joins the row before it"
            assert float(row["gbps"]) == pytest.approx(int(row["bytes"]) / interval / 1e9)
        for node in result.cluster.nodes:
            on_node = [r for r in mine if r["node"] == node]
            times = [float(r["t_s"]) for r in on_node]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert len(times) >= 3 and all(0.5 < g < 2.0 for g in gaps[:-1]), gaps
            intervals = [float(r["interval_s"]) for r in on_node]
            assert gaps == pytest.approx(intervals[1:]), "rows cover the phase without a gap"
    train = [r for r in rows if r["op"] == "train"]
    assert all(0 <= float(r["au"]) <= 1 for r in train if r["au"])
    assert len([r for r in train if r["au"]]) >= 3 * len(result.cluster.nodes)


V1_RESULT = json.loads((ROOT / "tests" / "data" / "result-v1.json").read_text())


def test_html_report_renders_its_charts_in_chromium(scraped_run, chromium, tmp_path):
    result = scraped_run.result
    page = tmp_path / "report.html"
    page.write_text(render_html(result))
    text = page.read_text()
    assert "<script" not in text and not re.search(
        r"""(src|href)=["']?https?:|url\(https?:""", text
    )
    dom = headless(chromium, tmp_path / "p1", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr
    html = dom.stdout
    for node in result.cluster.nodes:
        assert drawn(html, f"throughput-node-{node}") >= 3
        assert drawn(html, f"concurrency-limit-{node}") >= 3
        assert drawn(html, f"concurrency-in-flight-{node}") >= 3
    assert drawn(html, "throughput-cluster-total") >= 3
    for phase in ("put", "get"):
        assert f'id="throughput-phase-{phase}"' in html
        assert drawn(html, f"latency-cdf-{phase}") >= 2
    texts = re.findall(r"<text[^>]*>([^<]*)</text>", html)
    assert {"seconds since start", "cluster total", "latency, ms (log)"} <= set(texts)
    assert any(unit in texts for unit in ("KB/s", "MB/s", "GB/s"))
    assert not [t for t in texts if re.fullmatch(r"-?[\d.,]+e[+-]?\d+|.*\u00d7.*", t)], (
        "ticks in scientific notation"
    )
    shot = tmp_path / "report.png"
    taken = headless(
        chromium, tmp_path / "p2", "--window-size=1100,2200", f"--screenshot={shot}", page.as_uri()
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


@pytest.mark.integration
def test_a_version_1_result_file_still_renders(tmp_path):
    old = tmp_path / "v1.json"
    old.write_text(json.dumps(V1_RESULT))
    proc = run_cli("report", str(old))
    assert proc.returncode == 0, proc.stderr
    assert "v1-run" in proc.stdout and "OK" in proc.stdout
    page = (tmp_path / "v1.html").read_text()
    assert 'id="throughput-node-' in page and 'id="latency-cdf-put"' in page
    proc = run_cli("compare", str(old), str(old))
    assert proc.returncode == 0 and "1.00x" in proc.stdout, proc.stderr


def test_report_command_re_renders_a_saved_result(scraped_run, tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(scraped_run.saved))
    proc = run_cli("report", str(saved))
    assert proc.returncode == 0, proc.stderr
    assert scraped_run.saved["run_id"] in proc.stdout and "OK" in proc.stdout
    assert "<svg" in (tmp_path / "run.html").read_text()


@pytest.mark.integration
def test_report_of_something_else_is_one_clear_line(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text("not json")
    proc = run_cli("report", str(bad))
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip() == f"s3dlio-ray: error: {bad} is not JSON (line 1): not a result file"
    )


def phase(name, ops, nbytes, latency_s, errors=0):
    return PhaseResult(Phase(name), 1.0, recorded(ops, nbytes, latency_s, errors))


def test_compare_by_hand():
    a = result_of(phase("put", 100, 10**9, 0.010), phase("get", 200, 2 * 10**9, 0.005, errors=1))
    b = result_of(phase("get", 150, 3 * 10**9, 0.010))
    got = {(d.phase, d.metric): (d.a, d.b, d.ratio) for d in compare(a, b)}
    assert set(got) == {("get", m) for m in ("GB/s", "ops/s", "p50 ms", "p99 ms", "errors")}
    assert got[("get", "GB/s")] == (2.0, 3.0, 1.5)
    assert got[("get", "ops/s")] == (200, 150, 0.75)
    assert got[("get", "p50 ms")] == (5.0, 10.0, 2.0)
    assert got[("get", "p99 ms")] == (5.0, 10.0, 2.0)
    assert got[("get", "errors")] == (1, 0, 0.0)


def test_compare_command_on_two_real_runs(ray_cluster, moto_url, tmp_path, monkeypatch):
    monkeypatch.setenv("RAY_ADDRESS", ray_cluster.address)
    outputs = []
    for name, concurrency in (("a", "2"), ("b", "8")):
        out = tmp_path / f"{name}.json"
        proc = run_cli(
            "run",
            "configs/quick.yaml",
            "--endpoint",
            moto_url,
            "--objects",
            "12",
            "--object-size",
            "256KiB",
            "--concurrency",
            concurrency,
            "--metrics-port",
            "off",
            "--output",
            str(out),
            "--quiet",
        )
        assert proc.returncode == 0, proc.stdout + proc.stderr
        outputs.append(out)
    proc = run_cli("compare", *map(str, outputs))
    assert proc.returncode == 0, proc.stderr
    a, b = (json.loads(p.read_text()) for p in outputs)
    expected = b["phases"][0]["gbps"] / a["phases"][0]["gbps"]
    line = next(x for x in proc.stdout.splitlines() if "put" in x and "GB/s" in x)
    assert f"{expected:.2f}x" in line


def test_report_of_several_results_puts_them_side_by_side(scraped_run, tmp_path):
    slower = json.loads(json.dumps(scraped_run.saved))
    for slow_phase in slower["phases"]:
        slow_phase["elapsed_s"] *= 4
    paths = []
    for name, doc in (("fast", scraped_run.saved), ("slow", slower)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    proc = run_cli("report", *paths)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout[proc.stdout.index("configurations (ratio") :]
    assert "0.25x" in next(x for x in table.splitlines() if "put" in x and "slow" in x)
    page = (tmp_path / "compare-fast-slow.html").read_text()
    assert "Configuration comparison" in page and "0.25x" in page
    assert not (tmp_path / "slow.html").exists() and not (tmp_path / "fast.html").exists()


def test_report_of_two_results_writes_a_new_comparison_page_and_overwrites_neither(
    scraped_run, tmp_path
):
    a, b = tmp_path / "a.json", tmp_path / "b.json"
    for path in (a, b):
        path.write_text(json.dumps(scraped_run.saved))
        path.with_suffix(".html").write_text("the run's own page")
    proc = run_cli("report", str(a), str(b))
    assert proc.returncode == 0, proc.stderr
    page = tmp_path / "compare-a-b.html"
    assert f"comparison: {page}" in proc.stdout
    assert "s3dlio-ray comparison: a, b" in page.read_text()
    assert (
        a.with_suffix(".html").read_text()
        == b.with_suffix(".html").read_text()
        == ("the run's own page")
    )
    proc = run_cli("report", str(a), str(b), "--html", str(a.with_suffix(".html")))
    assert proc.returncode == 2 and "would overwrite a result or its own page" in proc.stderr
    assert a.with_suffix(".html").read_text() == "the run's own page"

"""What a run leaves behind: CSV time series, HTML report (opened in Chromium), report, compare."""

from __future__ import annotations

import csv
import itertools
import json

import jsonschema
import pytest
from conftest import headless, run_cli

from s3dlio_ray.compare import compare
from s3dlio_ray.html_report import render_html
from s3dlio_ray.report import result_schema, write_csv


def test_result_files_follow_the_schema(scraped_run):
    jsonschema.Draft202012Validator.check_schema(result_schema())
    jsonschema.validate(scraped_run.saved, result_schema())
    env = scraped_run.saved["environment"]
    assert env["versions"]["ray"] and env["cpus"] >= 1
    assert set(scraped_run.saved["cluster"]["node_cpus"]) == set(scraped_run.result.nodes)


def test_the_schema_refuses_a_broken_result(scraped_run):
    broken = json.loads(json.dumps(scraped_run.saved))
    broken["phases"][0]["objects"] = -1
    with pytest.raises(jsonschema.ValidationError):
        jsonschema.validate(broken, result_schema())


def test_time_series_has_a_row_per_second_per_node_and_adds_up(scraped_run, tmp_path):
    doc = scraped_run.saved
    path = write_csv(doc, tmp_path / "series.csv")
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
    }
    for phase in doc["phases"]:
        mine = [r for r in rows if r["op"] == phase["phase"]]
        assert {r["node"] for r in mine} == set(scraped_run.result.nodes)
        assert sum(int(r["bytes"]) for r in mine) == phase["bytes"]
        assert sum(int(r["ops"]) for r in mine) == phase["objects"]
        for node in scraped_run.result.nodes:
            times = [float(r["t_s"]) for r in mine if r["node"] == node]
            gaps = [b - a for a, b in itertools.pairwise(times)]
            assert len(times) >= 3 and all(0.5 < g < 2.0 for g in gaps[:-1]), gaps


def test_html_report_renders_its_charts_in_chromium(scraped_run, chromium, tmp_path):
    page = tmp_path / "report.html"
    page.write_text(render_html(scraped_run.saved))
    dom = headless(chromium, tmp_path / "p1", "--dump-dom", page.as_uri())
    assert dom.returncode == 0, dom.stderr[-2000:]
    assert "Uncaught" not in dom.stderr and "CONSOLE" not in dom.stderr
    polylines = [part for part in dom.stdout.split("<polyline")[1:] if 'class="series"' in part]
    assert len(polylines) >= 2 * len(scraped_run.result.nodes)  # throughput and concurrency
    assert all('points="' in p and 'points=""' not in p for p in polylines)
    assert dom.stdout.count('class="bar"') == 3 * len(scraped_run.saved["phases"])
    for node in scraped_run.result.nodes:
        assert node in dom.stdout
    shot = tmp_path / "report.png"
    taken = headless(
        chromium, tmp_path / "p2", "--window-size=1000,1600", f"--screenshot={shot}", page.as_uri()
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 20_000


def test_report_command_re_renders_a_saved_result(scraped_run, tmp_path):
    saved = tmp_path / "run.json"
    saved.write_text(json.dumps(scraped_run.saved))
    proc = run_cli("report", str(saved))
    assert proc.returncode == 0, proc.stderr
    assert scraped_run.saved["run_id"] in proc.stdout and "OK" in proc.stdout
    assert "<svg" in (tmp_path / "run.html").read_text()


def test_report_of_something_else_is_one_clear_line(tmp_path):
    bad = tmp_path / "notes.json"
    bad.write_text("not json")
    proc = run_cli("report", str(bad))
    assert proc.returncode == 1 and "Traceback" not in proc.stderr
    assert (
        proc.stderr.strip() == f"s3dlio-ray: error: {bad} is not JSON (line 1): not a result file"
    )


def phase(name, gbps, ops_per_s, p50, p99, errors):
    return {
        "phase": name,
        "gbps": gbps,
        "ops_per_s": ops_per_s,
        "errors": errors,
        "latency": {"p50_s": p50, "p99_s": p99},
    }


def test_compare_by_hand():
    a = {
        "phases": [phase("put", 1.0, 100, 0.010, 0.050, 0), phase("get", 2.0, 200, 0.005, 0.020, 1)]
    }
    b = {"phases": [phase("get", 3.0, 150, 0.010, 0.010, 0)]}
    got = {(d.phase, d.metric): (d.a, d.b, d.ratio) for d in compare(a, b)}
    assert set(got) == {("get", m) for m in ("GB/s", "ops/s", "p50 ms", "p99 ms", "errors")}
    assert got[("get", "GB/s")] == (2.0, 3.0, 1.5)
    assert got[("get", "ops/s")] == (200, 150, 0.75)
    assert got[("get", "p50 ms")] == (5.0, 10.0, 2.0)
    assert got[("get", "p99 ms")] == (20.0, 10.0, 0.5)
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
    for phase in slower["phases"]:
        phase["gbps"] /= 4
    paths = []
    for name, doc in (("fast", scraped_run.saved), ("slow", slower)):
        path = tmp_path / f"{name}.json"
        path.write_text(json.dumps(doc))
        paths.append(str(path))
    proc = run_cli("report", *paths)
    assert proc.returncode == 0, proc.stderr
    table = proc.stdout[proc.stdout.index("configurations (ratio") :]
    assert "0.25x" in next(x for x in table.splitlines() if "put" in x and "slow" in x)
    page = (tmp_path / "slow.html").read_text()
    assert "Configuration comparison" in page and "0.25x" in page

"""Charts that cannot lie: no label drawn over another, no legend over the data, no tick in
scientific notation, and no plotted rate the op-log says never happened.

The live runs are the session's (put, get, datagen and train through a slow proxy) and one mixed
run here, both with an op-log: the requests' own end times are the oracle for each phase's best
whole second.
"""

from __future__ import annotations

import asyncio
import dataclasses
import itertools
import math
import os
import re
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ROOT, TEST_CREDENTIALS, headless, recorded, result_of
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.text import Text
from test_oplog import read_oplog, when

from s3dlio_ray._internal.model.results import (
    ConfigEvent,
    PhaseResult,
    RunResult,
    SeriesRow,
    ShareResult,
)
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.reports.html import (
    figures,
    phase_spans,
    plotted_rates,
    readable,
    render_html,
    steps,
)
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.storage.oplog import oplog_pattern

ARTIFACTS = Path(os.environ.get("S3DLIO_RAY_TEST_ARTIFACTS", ROOT / "build" / "test-artifacts"))

MOVES_BYTES = {
    "put": {"PUT"},
    "datagen": {"PUT"},
    "get": {"GET"},
    "train": {"GET"},
    "mixed": {"PUT", "GET"},
}
"""Which op-log operations carry a phase's bytes."""


def test_readable_ticks_say_the_number_in_the_axis_unit():
    assert [readable(v) for v in (14000, 1000, 250, 2.5, 0.004, 0)] == [
        "14,000",
        "1,000",
        "250",
        "2.5",
        "0.004",
        "0",
    ]


def _row(t_s: float, interval: float, phase: str = "put", node: str = "n1", **kw) -> SeriesRow:
    values = dict(op=phase, bytes=1000, ops=1, errors=0, concurrency=8, in_flight=4, epoch=None)
    values.update(kw)
    return SeriesRow(
        time=1e9 + t_s,
        t_s=t_s,
        node=node,
        gbps=values["bytes"] / interval / 1e9,
        phase=phase,
        interval_s=interval,
        **values,
    )


def _series(*rows: SeriesRow, events=()) -> RunResult:
    return dataclasses.replace(result_of(), timeseries=rows, events=tuple(events))


def test_steps_draw_each_interval_flat_and_nothing_between_phases():
    xs, ys = steps([(0.0, 1.0, 5.0), (1.0, 2.0, 7.0), (3.0, 4.0, 2.0)])
    assert xs[:4] == [0.0, 1.0, 1.0, 2.0] and ys[:4] == [5.0, 5.0, 7.0, 7.0]
    assert math.isnan(xs[4]) and math.isnan(ys[4]), "a gap is drawn as a gap"
    assert xs[5:] == [3.0, 4.0] and ys[5:] == [2.0, 2.0]


def test_phase_spans_cover_the_phases_rows_and_not_the_time_between():
    rows = [_row(1.0, 1.0), _row(2.0, 1.0), _row(2.6, 0.6), _row(4.0, 1.0, "get")]
    assert phase_spans(rows) == [("put", 0.0, 2.6), ("get", 3.0, 4.0)]


def test_a_mixed_phase_plots_each_operation_and_the_cluster_total_once():
    result = _series(
        _row(1.0, 1.0, "mixed", bytes=300),
        _row(1.0, 1.0, "mixed", op="get", bytes=200),
        _row(1.0, 1.0, "mixed", op="put", bytes=100),
        _row(1.0, 1.0, "mixed", node="n2", bytes=50),
    )
    lines = plotted_rates(result)
    assert lines["cluster-total"] == [(0.0, 1.0, 350.0)]
    assert lines["mixed-get"] == [(0.0, 1.0, 200.0)] and lines["mixed-put"] == [(0.0, 1.0, 100.0)]


def _texts(figure) -> Iterator[Text]:
    """Every label the figure draws: titles, axis labels, the tick labels in view, legends,
    annotations."""
    for text in figure.findobj(Text):
        if not text.get_visible() or not text.get_text().strip():
            continue
        axis = _tick_axis(figure, text)
        if axis is not None and text not in axis:
            continue
        yield text


def _tick_axis(figure, text: Text) -> set[Text] | None:
    """The tick labels drawn on the axis `text` is a tick label of (None: not a tick label)."""
    for axes in figure.axes:
        for axis in (axes.xaxis, axes.yaxis):
            labels = axis.get_ticklabels(which="both")
            if any(text is label for label in labels):
                low, high = sorted(axis.get_view_interval())
                return {
                    tick.label1
                    for tick in axis.get_major_ticks()
                    if low - 1e-9 <= tick.get_loc() <= high + 1e-9
                }
    return None


def layout_faults(figure) -> list[str]:
    """What a reader would trip over: labels drawn over each other or off the figure, a legend
    over the data, a number in scientific notation."""
    canvas = FigureCanvasAgg(figure)
    canvas.draw()
    renderer = canvas.get_renderer()
    whole = figure.bbox
    faults = []
    drawn = [(text.get_text(), text.get_window_extent(renderer)) for text in _texts(figure)]
    for name, box in drawn:
        if box.x0 < whole.x0 - 1 or box.x1 > whole.x1 + 1 or box.y0 < whole.y0 - 1:
            faults.append(f"{name!r} is cut off by the figure's edge")
        if re.fullmatch(r"-?[\d.,]+e[+-]?\d+|.*\u00d7.*|.*\$.*", name):
            faults.append(f"{name!r} is in scientific notation")
    for (a, box_a), (b, box_b) in itertools.combinations(drawn, 2):
        if box_a.padded(-1).overlaps(box_b.padded(-1)):
            faults.append(f"{a!r} overlaps {b!r}")
    for axes in figure.axes:
        legend = axes.get_legend()
        for other in figure.axes if legend is not None else ():
            if legend.get_window_extent(renderer).overlaps(other.get_window_extent(renderer)):
                faults.append(f"a legend covers the plot of {other.get_title()!r}")
    return faults


def test_a_crowded_run_draws_no_label_over_another():
    """Short phases side by side, an epoch every second, changes close together, a mixed phase's
    four operations and a latency range of five decades."""
    rows = []
    for second in range(1, 9):
        rows.append(_row(second, 1.0, "train", au=0.5, epoch=second, bytes=second * 10**9))
    rows.append(_row(8.3, 0.3, "list", bytes=0, ops=4000))
    rows.append(_row(8.6, 0.3, "stat", bytes=0, ops=9000))
    rows.append(_row(8.8, 0.2, "delete", bytes=0, ops=7000))
    for second in range(10, 14):
        rows.append(_row(second, 1.0, "mixed", bytes=4 * 10**6, ops=40))
        for op in ("get", "put", "stat", "delete"):
            rows.append(_row(second, 1.0, "mixed", op=op, bytes=10**6, ops=10))
    events = [ConfigEvent(1e9 + t, t, {"concurrency": 8}) for t in (3.0, 3.1, 3.2, 11.0)]
    result = _series(*rows, events=events)
    slow, fast = recorded(10, 10_000, latency_s=20.0), recorded(10, 10_000, latency_s=0.0002)
    slow.merge(fast)
    result = dataclasses.replace(
        result,
        phases=(
            PhaseResult.merge(
                Phase.PUT, 10.0, [("a", "n1", ShareResult(Phase.PUT, 10.0, slow))], {}
            ),
        ),
    )
    drawn = figures(result, [("a", result), ("b", result)])
    assert set(drawn) == {"throughput", "operations", "latency", "concurrency", "au", "comparison"}
    for name, figure in drawn.items():
        assert layout_faults(figure) == [], name


def best_second(oplog: Path, phase: str, start: float, end: float) -> float:
    """The phase's highest whole-second rate, bytes/s, from the op-log: the most bytes whose
    requests ended within any one second of the phase's time (wall clock, `start` to `end`),
    per second; a phase shorter than a second is its own best second."""
    window = min(1.0, end - start)
    ends = sorted(
        (when(row["end"]).timestamp(), int(row["bytes"]))
        for path in oplog.parent.glob(oplog_pattern(oplog.name))
        for row in read_oplog(path)
        if row["op"] in MOVES_BYTES[phase] and not row["error"]
    )
    ends = [(at, moved) for at, moved in ends if start - 1.0 <= at <= end + 1.0]
    best = moved_in_window = first = 0
    for at, moved in ends:
        moved_in_window += moved
        while ends[first][0] <= at - window:
            moved_in_window -= ends[first][1]
            first += 1
        best = max(best, moved_in_window)
    return best / window


def rates_above_the_best_second(result: RunResult, oplog: Path) -> list[str]:
    """Every plotted rate of every phase against the op-log's best second of that phase.

    A row covers at least half a second, so a rate may reach twice the best second's when all
    of a second's bytes ended in half of it; the spike this guards against (bytes that ended in
    the last milliseconds of a phase divided by those milliseconds) was 80 times it."""
    faults = []
    lines = plotted_rates(result)
    for phase, start, end in phase_spans(result.timeseries):
        if phase not in MOVES_BYTES:
            continue
        epoch = result.timeseries[0].time - result.timeseries[0].t_s
        best = best_second(oplog, phase, epoch + start, epoch + end)
        for name, points in lines.items():
            for first, last, rate in points:
                if start - 1e-6 <= first and last <= end + 1e-6 and rate > 2 * best:
                    faults.append(
                        f"{phase} {name}: {rate:.0f} B/s at {last:.1f} s, best {best:.0f}"
                    )
    return faults


def screenshot(chromium: str, page: Path, name: str, profile: Path) -> Path:
    """The page as Chromium draws it, kept where CI keeps test artifacts."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    shot = ARTIFACTS / f"{name}.png"
    taken = headless(
        chromium, profile, "--window-size=1100,3200", f"--screenshot={shot}", page.as_uri()
    )
    assert taken.returncode == 0, taken.stderr[-2000:]
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    return shot


@pytest.fixture(scope="module")
def mixed_run(ray_cluster, moto_url, boto3_s3, tmp_path_factory) -> tuple[RunResult, Path]:
    """configs/mixed.yaml scaled down, with an op-log."""
    oplog = tmp_path_factory.mktemp("mixed") / "ops.tsv.zst"
    bucket = f"mixed-{uuid.uuid4().hex[:8]}"
    boto3_s3.create_bucket(Bucket=bucket)
    settings = load_settings(
        ROOT / "configs" / "mixed.yaml",
        {
            "bucket": bucket,
            "metrics_port": "off",
            "objects": 60,
            "object_size": "64KiB",
            "duration_s": 4,
            "op_log": str(oplog),
        },
        environ={},
    )
    result = asyncio.run(execute(plan_run(settings, (moto_url,), TEST_CREDENTIALS)))
    assert result.ok, result.error
    return result, oplog


def test_the_quick_and_train_charts_show_what_happened(scraped_run, chromium, tmp_path):
    result = scraped_run.result
    assert rates_above_the_best_second(result, scraped_run.oplog) == []
    drawn = figures(result)
    assert {"throughput", "operations", "latency", "concurrency", "au"} <= set(drawn)
    for name, figure in drawn.items():
        assert layout_faults(figure) == [], name
    page = tmp_path / "run.html"
    page.write_text(render_html(result))
    screenshot(chromium, page, "report-put-get-train", tmp_path / "profile")


def test_the_mixed_charts_show_each_operation(mixed_run, chromium, tmp_path):
    result, oplog = mixed_run
    assert rates_above_the_best_second(result, oplog) == []
    lines = plotted_rates(result, "ops")
    assert {"mixed-get", "mixed-put", "mixed-stat", "mixed-delete"} <= set(lines)
    drawn = figures(result)
    for name, figure in drawn.items():
        assert layout_faults(figure) == [], name
    page = tmp_path / "mixed.html"
    page.write_text(render_html(result))
    html = page.read_text()
    for op in ("get", "put"):
        assert f'id="throughput-op-mixed-{op}"' in html
    for op in ("get", "put", "stat", "delete"):
        assert f'id="operations-op-mixed-{op}"' in html
    screenshot(chromium, page, "report-mixed", tmp_path / "profile")


def test_the_comparison_charts_read(scraped_run, mixed_run, chromium, tmp_path):
    named = [("quick", scraped_run.result), ("mixed", mixed_run[0])]
    drawn = figures(scraped_run.result, named)
    assert layout_faults(drawn["comparison"]) == []
    page = tmp_path / "compare.html"
    page.write_text(render_html(scraped_run.result, named))
    screenshot(chromium, page, "report-compare", tmp_path / "profile")

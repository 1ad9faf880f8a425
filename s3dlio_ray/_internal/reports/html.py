"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched).

Charts are drawn by matplotlib as SVG with text kept as text, so the page stays one file that
opens anywhere and its labels can be searched: throughput over time per node with the cluster
total and the phases shaded, latency percentiles and the latency distribution (CDF) per
operation, concurrency over time, and for several configurations their GB/s and p99 side by side.
"""

from __future__ import annotations

import html
import io
import re
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from s3dlio_ray._internal.model.results import RunResult, SeriesRow
from s3dlio_ray._internal.model.stats import LatencyHistogram, bucket_upper_bound
from s3dlio_ray._internal.reports.compare import CONFIGURATION_COLUMNS, Named, configuration_rows
from s3dlio_ray._internal.reports.files import (
    ACCELERATOR_COLUMNS,
    ENDPOINT_COLUMNS,
    EPOCH_COLUMNS,
    NODE_COLUMNS,
    SUMMARY_COLUMNS,
    accelerator_rows,
    endpoint_rows,
    epoch_rows,
    node_rows,
    summary_rows,
    training_line,
    verdict,
)

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]
PHASE_SHADES = ["#e8eef7", "#f7efe6", "#eaf5ea", "#f3eaf5", "#f5f5e4"]
EVENT_COLOR = "#8e44ad"
SIZE = (10.0, 3.6)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, td.name { text-align: left; }
.ok { color: #2ca02c; font-weight: bold; } .failed { color: #d62728; font-weight: bold; }
figure { margin: 8px 0; } figure svg { width: 100%; height: auto; }
.meta { color: #555; font-size: 13px; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _figure(rows: int = 1, cols: int = 1, size: tuple[float, float] = SIZE) -> Figure:
    from matplotlib.figure import Figure

    figure = Figure(figsize=size, layout="constrained")
    figure.subplots(rows, cols)
    return figure


def _svg(figure: Figure, name: str) -> str:
    """The figure as an inline <svg>, its ids prefixed so several charts share one page."""
    import matplotlib

    with matplotlib.rc_context({"svg.fonttype": "none", "svg.hashsalt": name}):
        out = io.StringIO()
        figure.savefig(out, format="svg")
    text = out.getvalue()
    text = re.sub(r"<metadata>.*?</metadata>", "", text[text.index("<svg") :], flags=re.DOTALL)
    text = re.sub(r'id="([^"]+)"', rf'id="{name}-\1"', text)
    text = re.sub(r"url\(#([^)]+)\)", rf"url(#{name}-\1)", text)
    text = re.sub(r'xlink:href="#([^"]+)"', rf'xlink:href="#{name}-\1"', text)
    return f'<figure class="chart" id="{name}">{text}</figure>'


def _plain_ticks(axes: Axes) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(nbins=12))
    axes.yaxis.set_major_locator(MaxNLocator(nbins=6))
    axes.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.4g}"))
    axes.grid(True, color="#e0e0e0", linewidth=0.6)
    axes.set_xlabel("seconds since start")


def rate_unit(peak_bytes_per_s: float) -> tuple[str, float]:
    """A unit that keeps a chart's numbers readable: GB/s, MB/s or KB/s (decimal)."""
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6)):
        if peak_bytes_per_s >= scale:
            return unit, scale
    return "KB/s", 1e3


def phase_spans(rows: Sequence[SeriesRow]) -> list[tuple[str, float, float]]:
    """(phase, start, end) in the series' seconds: a row covers the second before its time."""
    spans: dict[str, tuple[float, float]] = {}
    for row in rows:
        start, end = spans.get(row.op, (row.t_s, row.t_s))
        spans[row.op] = (min(start, row.t_s), max(end, row.t_s))
    ordered = sorted(spans.items(), key=lambda item: item[1][0])
    result, previous_end = [], 0.0
    for op, (first, last) in ordered:
        start = max(previous_end, first - 1.0)
        result.append((op, start, last))
        previous_end = last
    return result


def _shade_phases(axes: Axes, spans: Sequence[tuple[str, float, float]]) -> None:
    for index, (op, start, end) in enumerate(spans):
        axes.axvspan(
            start, end, color=PHASE_SHADES[index % len(PHASE_SHADES)], zorder=0, gid=f"phase-{op}"
        )
        axes.annotate(
            op,
            xy=((start + end) / 2, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(0, -12),
            textcoords="offset points",
            ha="center",
            fontsize=9,
            color="#555",
        )


def _backdrop(axes: Axes, result: RunResult) -> None:
    """Phases shaded, and each change of settings while the run went (`s3dlio-ray control`) a
    numbered line, as the changes table numbers it."""
    _shade_phases(axes, phase_spans(result.timeseries))
    for number, event in enumerate(result.events, 1):
        axes.axvline(
            event.t_s,
            color=EVENT_COLOR,
            linestyle="-.",
            linewidth=1,
            zorder=3,
            gid=f"event-{number}",
        )
        axes.annotate(
            str(number),
            xy=(event.t_s, 1.0),
            xycoords=("data", "axes fraction"),
            xytext=(3, -26),
            textcoords="offset points",
            fontsize=8,
            color=EVENT_COLOR,
        )


def changes_section(result: RunResult) -> str:
    """The settings changed while the run went, numbered as the charts mark them."""
    if not result.events:
        return ""
    rows = "".join(
        f"<tr><td>{number}</td><td>{event.t_s:.1f}</td><td>{_esc(event.describe())}</td></tr>"
        for number, event in enumerate(result.events, 1)
    )
    return (
        "<h2>Changes while the run went</h2><table><tr><th>#</th><th>seconds since start</th>"
        f"<th>change</th></tr>{rows}</table>"
    )


def _lines(rows: Sequence[SeriesRow], value: str) -> dict[str, list[tuple[float, float]]]:
    lines: dict[str, list[tuple[float, float]]] = {}
    for row in rows:
        lines.setdefault(row.node, []).append((row.t_s, float(getattr(row, value))))
    return lines


def throughput_chart(result: RunResult) -> str:
    """Per node and for the cluster, over time, phases shaded."""
    rows = result.timeseries
    if not rows:
        return "<p class='meta'>throughput over time: no samples (the run was under a second)</p>"
    per_node: dict[str, list[tuple[float, float]]] = {}
    total: dict[float, float] = {}
    for row in rows:
        per_node.setdefault(row.node, []).append((row.t_s, row.gbps * 1e9))
        total[row.t_s] = total.get(row.t_s, 0.0) + row.gbps * 1e9
    unit, scale = rate_unit(max(total.values()))
    figure = _figure()
    axes = figure.axes[0]
    _backdrop(axes, result)
    for index, (node, points) in enumerate(sorted(per_node.items())):
        xs, ys = zip(*sorted(points), strict=True)
        axes.plot(
            xs,
            [y / scale for y in ys],
            color=COLORS[index % len(COLORS)],
            zorder=2,
            label=node,
            gid=f"node-{node}",
        )
    xs, ys = zip(*sorted(total.items()), strict=True)
    axes.plot(
        xs,
        [y / scale for y in ys],
        color="#222",
        linewidth=3.2,
        alpha=0.45,
        zorder=1,
        label="cluster total",
        gid="cluster-total",
    )
    axes.set_ylabel(unit)
    axes.set_ylim(bottom=0)
    axes.set_title("throughput per node and for the cluster")
    _plain_ticks(axes)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _svg(figure, "throughput")


def concurrency_chart(result: RunResult) -> str:
    """The controllers' limit and the requests in flight per node, phases shaded."""
    rows = result.timeseries
    if not rows:
        return "<p class='meta'>concurrency over time: no samples</p>"
    figure = _figure()
    axes = figure.axes[0]
    _backdrop(axes, result)
    limits, in_flight = _lines(rows, "concurrency"), _lines(rows, "in_flight")
    for index, node in enumerate(sorted(limits)):
        color = COLORS[index % len(COLORS)]
        xs, ys = zip(*sorted(limits[node]), strict=True)
        axes.step(xs, ys, where="post", color=color, label=f"{node} limit", gid=f"limit-{node}")
        xs, ys = zip(*sorted(in_flight[node]), strict=True)
        axes.plot(
            xs, ys, color=color, linestyle=":", label=f"{node} in flight", gid=f"in-flight-{node}"
        )
    axes.set_ylabel("requests")
    axes.set_ylim(bottom=0)
    axes.set_title("concurrency limit and requests in flight per node")
    _plain_ticks(axes)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _svg(figure, "concurrency")


def _histograms(result: RunResult) -> Iterator[tuple[str, LatencyHistogram]]:
    """Each operation's latency histogram: a PUT or GET phase's own, a mixed phase's per op."""
    for phase in result.phases:
        if phase.by_op:
            for op, summary in phase.by_op.items():
                if summary.histogram is not None and summary.histogram.count:
                    yield f"{phase.phase}: {op}", summary.histogram
        elif phase.stats.latency.count:
            yield str(phase.phase), phase.stats.latency


def latency_chart(result: RunResult) -> str:
    """Left: p50/p90/p99 per operation; right: the whole distribution as a CDF."""
    histograms = list(_histograms(result))
    if not histograms:
        return "<p class='meta'>latency: no completed operation</p>"
    from matplotlib.ticker import FuncFormatter, LogLocator

    figure = _figure(1, 2, (10.0, 3.8))
    bars, cdf = figure.axes
    width = 0.8 / 3
    for index, quantile in enumerate((0.5, 0.9, 0.99)):
        values = [hist.percentile(quantile) * 1e3 for _, hist in histograms]
        positions = [i + (index - 1) * width for i in range(len(histograms))]
        bars.bar(
            positions,
            values,
            width * 0.95,
            color=COLORS[index],
            label=f"p{quantile * 100:g}",
        )
    bars.set_xticks(range(len(histograms)), [name for name, _ in histograms])
    bars.set_ylabel("ms")
    bars.set_title("latency percentiles per operation")
    bars.yaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:,.4g}"))
    bars.grid(True, axis="y", color="#e0e0e0", linewidth=0.6)
    bars.legend(fontsize=9, frameon=False)
    for index, (name, hist) in enumerate(histograms):
        xs, ys, seen = [hist.min_s * 1e3], [0.0], 0
        for bucket, count in enumerate(hist.counts):
            if count:
                seen += count
                xs.append(max(min(bucket_upper_bound(bucket), hist.max_s), hist.min_s) * 1e3)
                ys.append(seen / hist.count)
        cdf.step(
            xs,
            ys,
            where="post",
            color=COLORS[index % len(COLORS)],
            label=name,
            gid=f"cdf-{name.replace(': ', '-')}",
        )
    cdf.set_xscale("log")
    cdf.xaxis.set_major_locator(LogLocator(base=10))
    cdf.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
    cdf.set_xlabel("latency, ms (log)")
    cdf.set_ylabel("fraction of operations")
    cdf.set_ylim(0, 1.02)
    cdf.set_title("latency distribution (CDF)")
    cdf.grid(True, color="#e0e0e0", linewidth=0.6)
    cdf.legend(fontsize=9, frameon=False, loc="lower right")
    return _svg(figure, "latency")


def comparison_chart(named: Named) -> str:
    """GB/s and p99 per phase, one bar per configuration."""
    phases = [str(p.phase) for p in named[0][1].phases]
    figure = _figure(1, 2, (10.0, 3.6))
    width = 0.8 / len(named)
    for axes, metric, title, unit, value in (
        (figure.axes[0], "gbps", "GB/s per phase and configuration", "GB/s", lambda p: p.gbps),
        (
            figure.axes[1],
            "p99",
            "p99 latency per phase and configuration",
            "ms",
            lambda p: p.latency.p99_s * 1e3,
        ),
    ):
        for index, (label, result) in enumerate(named):
            values = [value(p) if (p := result.phase(name)) else 0.0 for name in phases]
            positions = [i + (index - (len(named) - 1) / 2) * width for i in range(len(phases))]
            bars = axes.bar(
                positions,
                values,
                width * 0.95,
                color=COLORS[index % len(COLORS)],
                label=label,
            )
            for bar, phase in zip(bars, phases, strict=True):
                bar.set_gid(f"{metric}-{phase}-{label}")
        axes.set_xticks(range(len(phases)), phases)
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, axis="y", color="#e0e0e0", linewidth=0.6)
    figure.axes[0].legend(fontsize=9, frameon=False)
    return _svg(figure, "comparison")


def au_chart(result: RunResult) -> str:
    """Each node's accelerator utilization over time in train phases, with the threshold."""
    rows = [row for row in result.timeseries if row.au is not None]
    if not rows:
        return "<p class='meta'>accelerator utilization over time: no samples</p>"
    figure = _figure()
    axes = figure.axes[0]
    _backdrop(axes, result)
    for index, (node, points) in enumerate(sorted(_lines(rows, "au").items())):
        xs, ys = zip(*sorted(points), strict=True)
        axes.plot(
            xs,
            [y * 100 for y in ys],
            color=COLORS[index % len(COLORS)],
            label=node,
            gid=f"node-{node}",
        )
    thresholds = {
        p.training.au_threshold
        for p in result.phases
        if p.training and p.training.au_threshold is not None
    }
    for threshold in sorted(thresholds):
        axes.axhline(
            threshold * 100,
            color="#c0392b",
            linestyle="--",
            label=f"threshold {threshold * 100:.0f}%",
            gid="threshold",
        )
    axes.set_ylabel("AU %")
    axes.set_ylim(0, 105)
    axes.set_title("accelerator utilization per node")
    _plain_ticks(axes)
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)
    return _svg(figure, "au")


def training_section(result: RunResult) -> str:
    """Per train phase: the line, the epochs, the slowest accelerators; then AU over time."""
    phases = [p for p in result.phases if p.training is not None]
    if not phases:
        return ""
    parts = ["<h2>Training</h2>"]
    for phase in phases:
        training = phase.training
        assert training is not None
        parts.append(f'<p class="meta">{_esc(training_line(training))}</p>')
        parts.append(_table(EPOCH_COLUMNS, epoch_rows(training)))
        parts.append(_table(ACCELERATOR_COLUMNS, accelerator_rows(training)))
    parts.append(au_chart(result))
    return "\n".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def comparison_section(named: Named) -> str:
    """Configurations (or runs) side by side: the ratio table and the bars."""
    if len(named) < 2:
        return ""
    table = _table(CONFIGURATION_COLUMNS, configuration_rows(named))
    return f"""<h2>Configuration comparison</h2>
<p class="meta">ratio: GB/s over the first's ({_esc(named[0][0])})</p>{table}
{comparison_chart(named)}"""


def render_html(result: RunResult, compared: Named = ()) -> str:
    """The report of one result; with `compared` (each configuration of the run, this one
    among them, with its name) a comparison section."""
    word = verdict(result)
    status = f'<span class="{"ok" if word == "OK" else "failed"}">{word}</span>'
    cluster = result.cluster
    endpoints = endpoint_rows(result)
    by_endpoint = (
        f"<h2>By endpoint</h2>{_table(ENDPOINT_COLUMNS, endpoints)}"
        if any(len(p.endpoints) > 1 for p in result.phases)
        else ""
    )
    error = f'<p class="failed">{_esc(result.error)}</p>' if result.error else ""
    addresses = ", ".join(result.endpoints or (result.endpoint,))
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>s3dlio-ray {_esc(result.workload)} {_esc(result.run_id)}</title>
<style>{STYLE}</style></head><body>
<h1>s3dlio-ray {_esc(result.workload)} &mdash; run {_esc(result.run_id)} {status}</h1>
<p class="meta">endpoint {_esc(addresses)} &middot; {_esc(result.http_version)} &middot;
profile {_esc(result.profile)} &middot; {cluster.executor} executor,
{len(cluster.nodes)} node(s), {cluster.actors} actor(s) &middot;
s3dlio-ray {_esc(result.tool_version)}</p>{error}
<h2>Summary</h2>{_table(SUMMARY_COLUMNS, summary_rows(result))}
<h2>By node</h2>{_table(NODE_COLUMNS, node_rows(result))}
{by_endpoint}
{training_section(result)}
{changes_section(result)}
<h2>Throughput over time</h2>
{throughput_chart(result)}
<h2>Latency per operation</h2>
{latency_chart(result)}
<h2>Concurrency over time</h2>
{concurrency_chart(result)}
{comparison_section(compared)}
</body></html>
"""

"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched).

Charts are drawn by matplotlib as SVG with text kept as text, so the page stays one file that
opens anywhere and its labels can be searched: throughput over time per node with the cluster
total and the phases shaded, latency percentiles and the latency distribution (CDF) per
operation, concurrency over time, and for several configurations their GB/s and p99 side by side.
"""

from __future__ import annotations

import html
import io
import math
import re
from collections.abc import Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from s3dlio_ray._internal.model.bottleneck import RULES, SATURATED
from s3dlio_ray._internal.model.results import RunResult, SeriesRow
from s3dlio_ray._internal.model.stats import LatencyHistogram, bucket_upper_bound
from s3dlio_ray._internal.reports.compare import (
    COMPARE_COLUMNS,
    CONFIGURATION_COLUMNS,
    Named,
    compare,
    compare_notes,
    compare_rows,
    configuration_rows,
)
from s3dlio_ray._internal.reports.files import (
    ACCELERATOR_COLUMNS,
    EPOCH_COLUMNS,
    OPEN_LOOP_COLUMNS,
    accelerator_rows,
    endpoint_columns,
    endpoint_rows,
    epoch_rows,
    node_columns,
    node_rows,
    open_loop_line,
    open_loop_rows,
    replay_lines,
    summary_columns,
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
EPOCH_COLOR = "#555555"
SIZE = (10.0, 3.6)

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; max-width: 1100px; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; } h3 { font-size: 14px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child, td.name { text-align: left; }
td { white-space: nowrap; } td:first-child { white-space: pre; }
.ok { color: #2ca02c; font-weight: bold; } .failed { color: #d62728; font-weight: bold; }
figure { margin: 8px 0; } figure svg { width: 100%; height: auto; }
.meta { color: #555; font-size: 13px; }
table.prose td { white-space: normal; text-align: left; }
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


def readable(value: float, _position: object = None) -> str:
    """A tick label in the axis' own unit: `14,000`, `250`, `2.5`, `0.004`; never `1.4e+04`."""
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if not value:
        return "0"
    decimals = min(12, max(0, 2 - math.floor(math.log10(abs(value)))))
    text = f"{value:.{decimals}f}"
    return text.rstrip("0").rstrip(".") if decimals else text


def _ticks(axes: Axes) -> None:
    from matplotlib.ticker import FuncFormatter, MaxNLocator

    axes.xaxis.set_major_locator(MaxNLocator(nbins=10))
    axes.xaxis.set_major_formatter(FuncFormatter(readable))
    axes.yaxis.set_major_locator(MaxNLocator(nbins=6))
    axes.yaxis.set_major_formatter(FuncFormatter(readable))
    axes.grid(True, color="#e0e0e0", linewidth=0.6)
    axes.set_xlabel("seconds since start")


def _legend_outside(axes: Axes) -> None:
    """The legend right of the plot, where it covers no data."""
    axes.legend(loc="upper left", bbox_to_anchor=(1.01, 1.0), fontsize=9, frameon=False)


def rate_unit(peak_bytes_per_s: float) -> tuple[str, float]:
    """A unit that keeps a chart's numbers readable: GB/s, MB/s or KB/s (decimal)."""
    for unit, scale in (("GB/s", 1e9), ("MB/s", 1e6)):
        if peak_bytes_per_s >= scale:
            return unit, scale
    return "KB/s", 1e3


def _start(row: SeriesRow) -> float:
    """Where the row's interval begins (a file before schema 7 does not say: a tick)."""
    return row.t_s - (row.interval_s if row.interval_s is not None else 1.0)


def phase_spans(rows: Sequence[SeriesRow]) -> list[tuple[str, float, float]]:
    """(phase, start, end) in the series' seconds, one per run of the phase's rows; the time
    between phases is in no span."""
    spans: list[tuple[str, float, float]] = []
    for row in sorted((r for r in rows if r.op == r.phase), key=lambda r: r.t_s):
        if spans and spans[-1][0] == row.phase and _start(row) <= spans[-1][2] + 1e-6:
            spans[-1] = (row.phase, spans[-1][1], max(spans[-1][2], row.t_s))
        else:
            spans.append((row.phase, _start(row), row.t_s))
    return spans


def steps(points: Sequence[tuple[float, float, float]]) -> tuple[list[float], list[float]]:
    """(start, end, value) intervals as a line that is flat over each interval and broken
    (NaN) where one interval does not begin where the one before ended: what is drawn is what
    was measured, and nothing is drawn between phases."""
    xs: list[float] = []
    ys: list[float] = []
    end = None
    for start, stop, value in sorted(points):
        if end is not None and start > end + 1e-6:
            xs.append(math.nan)
            ys.append(math.nan)
        xs += [max(start, end if end is not None else start), stop]
        ys += [value, value]
        end = stop
    return xs, ys


def _intervals(
    rows: Sequence[SeriesRow], value: str
) -> dict[str, list[tuple[float, float, float]]]:
    """Per node, (start, end, value) of each of its rows."""
    lines: dict[str, list[tuple[float, float, float]]] = {}
    for row in rows:
        lines.setdefault(row.node, []).append((_start(row), row.t_s, float(getattr(row, value))))
    return lines


def _shade_phases(axes: Axes, spans: Sequence[tuple[str, float, float]]) -> None:
    """Each phase shaded, named once in the legend."""
    shades: dict[str, str] = {}
    for op, start, end in spans:
        first = op not in shades
        shade = shades.setdefault(op, PHASE_SHADES[len(shades) % len(PHASE_SHADES)])
        axes.axvspan(
            start,
            end,
            color=shade,
            zorder=0,
            gid=f"phase-{op}" if first else None,
            label=f"phase {op}" if first else None,
        )


def _marks(
    axes: Axes,
    marks: Sequence[tuple[float, str]],
    color: str,
    style: str,
    name: str,
    legend: str,
    top: bool,
) -> None:
    """Vertical lines at `marks`, each labelled (at the top or the bottom: epochs and changes
    keep apart) unless the label would touch the one before it; the legend names them all."""
    low, high = axes.get_xlim()
    room = (high - low) / 25
    labelled = -math.inf
    for index, (at, label) in enumerate(marks):
        axes.axvline(
            at,
            color=color,
            linestyle=style,
            linewidth=1,
            zorder=3,
            gid=f"{name}-{index + 1}",
            label=legend if index == 0 else None,
        )
        if at - labelled >= room:
            labelled = at
            axes.annotate(
                label,
                xy=(at, 1.0 if top else 0.0),
                xycoords=("data", "axes fraction"),
                xytext=(2, -10 if top else 3),
                textcoords="offset points",
                fontsize=8,
                color=color,
            )


def epoch_starts(rows: Sequence[SeriesRow]) -> list[tuple[float, int]]:
    """Where each epoch after the first began on the series' clock: the start of the first
    interval in which an accelerator was in it."""
    starts: list[tuple[float, int]] = []
    latest = None
    for row in sorted((r for r in rows if r.epoch is not None), key=lambda r: r.t_s):
        assert row.epoch is not None
        if latest is not None and row.epoch > latest:
            starts.append((_start(row), row.epoch))
        latest = row.epoch if latest is None else max(latest, row.epoch)
    return starts


def _backdrop(axes: Axes, result: RunResult) -> None:
    """Phases shaded; the epochs of a train phase and each change of settings while the run
    went (`s3dlio-ray control`, numbered as the changes table numbers them) marked."""
    rows = result.timeseries
    _shade_phases(axes, phase_spans(rows))
    axes.set_xlim(min(_start(r) for r in rows), max(r.t_s for r in rows))
    epochs = epoch_starts(rows)
    _marks(
        axes,
        [(at, f"e{epoch}") for at, epoch in epochs],
        EPOCH_COLOR,
        ":",
        "epoch",
        "epoch starts",
        False,
    )
    events = [(e.t_s, str(number)) for number, e in enumerate(result.events, 1)]
    _marks(axes, events, EVENT_COLOR, "-.", "event", "change (numbered below)", True)


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


def plotted_rates(
    result: RunResult, per: str = "bytes"
) -> dict[str, list[tuple[float, float, float]]]:
    """What a rate chart draws, per second of `per` (a row's "bytes" or "ops"): per node, the
    cluster total and each operation of a mixed phase, as (start, end, rate) intervals."""
    lines: dict[str, list[tuple[float, float, float]]] = {}
    total: dict[tuple[float, float], float] = {}
    operations: dict[tuple[str, float, float], float] = {}
    for row in result.timeseries:
        span = (_start(row), row.t_s)
        rate = getattr(row, per) / max(span[1] - span[0], 1e-9)
        if row.op == row.phase:
            lines.setdefault(f"node-{row.node}", []).append((*span, rate))
            total[span] = total.get(span, 0.0) + rate
        else:
            key = (f"{row.phase}-{row.op}", *span)
            operations[key] = operations.get(key, 0.0) + rate
    lines["cluster-total"] = [(*span, rate) for span, rate in total.items()]
    for (name, start, end), rate in operations.items():
        lines.setdefault(name, []).append((start, end, rate))
    return lines


def _rate_figure(result: RunResult, per: str, title: str) -> Figure | None:
    """Per node, the cluster total (when there are several nodes) and a mixed phase's
    operations that moved any, over time, phases shaded; each row flat over its interval."""
    if not result.timeseries:
        return None
    lines = plotted_rates(result, per)
    peak = max(rate for _, _, rate in lines["cluster-total"])
    unit, scale = rate_unit(peak) if per == "bytes" else ("objects/s", 1.0)
    figure = _figure()
    axes = figure.axes[0]
    _backdrop(axes, result)
    nodes = sorted(name for name in lines if name.startswith("node-"))
    operations = sorted(
        name
        for name, points in lines.items()
        if name != "cluster-total" and name not in nodes and any(rate for *_, rate in points)
    )

    def line(name: str, **style: Any) -> None:
        xs, ys = steps(lines[name])
        axes.plot(xs, [y / scale for y in ys], **style)

    for index, name in enumerate(nodes):
        label = name.removeprefix("node-")
        line(
            name,
            color=COLORS[index % len(COLORS)],
            linewidth=1.4,
            zorder=3,
            label=f"{label} (the cluster)" if len(nodes) == 1 else label,
            gid=name,
        )
    if len(nodes) > 1:
        line(
            "cluster-total",
            color="#222",
            linewidth=1.6,
            linestyle="--",
            zorder=4,
            label="cluster total",
            gid="cluster-total",
        )
    for index, name in enumerate(operations, len(nodes)):
        line(
            name,
            color=COLORS[index % len(COLORS)],
            linewidth=1.1,
            linestyle=(0, (4, 2)),
            zorder=2,
            label=name.replace("-", ": ", 1),
            gid=f"op-{name}",
        )
    axes.set_ylabel(unit)
    axes.set_ylim(bottom=0)
    axes.set_title(title)
    _ticks(axes)
    _legend_outside(axes)
    return figure


def throughput_figure(result: RunResult) -> Figure | None:
    return _rate_figure(result, "bytes", "throughput per node and for the cluster")


def operations_figure(result: RunResult) -> Figure | None:
    """Objects per second: what small objects, metadata phases (list, stat, delete) and a
    mixed phase's operations are measured in."""
    return _rate_figure(result, "ops", "objects per second per node and for the cluster")


def concurrency_figure(result: RunResult) -> Figure | None:
    """The controllers' limit and the requests in flight per node, phases shaded."""
    rows = [row for row in result.timeseries if row.op == row.phase]
    if not rows:
        return None
    figure = _figure()
    axes = figure.axes[0]
    _backdrop(axes, result)
    limits, in_flight = _intervals(rows, "concurrency"), _intervals(rows, "in_flight")
    for index, node in enumerate(sorted(limits)):
        color = COLORS[index % len(COLORS)]
        axes.plot(*steps(limits[node]), color=color, label=f"{node} limit", gid=f"limit-{node}")
        axes.plot(
            *steps(in_flight[node]),
            color=color,
            linestyle=":",
            label=f"{node} in flight",
            gid=f"in-flight-{node}",
        )
    axes.set_ylabel("requests")
    axes.set_ylim(bottom=0)
    axes.set_title("concurrency limit and requests in flight per node")
    _ticks(axes)
    _legend_outside(axes)
    return figure


def resources_figure(result: RunResult) -> Figure | None:
    """Per node, the actors' CPU over the cores they may use and the busiest NIC's use of its
    speed, phases shaded: what the limit verdicts read."""
    rows = [row for row in result.timeseries if row.op == row.phase and row.cpu is not None]
    if not rows:
        return None
    figure = _figure()
    axes = figure.axes[0]
    _backdrop(axes, result)
    nodes = sorted({row.node for row in rows})
    for index, node in enumerate(nodes):
        color = COLORS[index % len(COLORS)]
        mine = [row for row in rows if row.node == node]
        cpu = [(_start(r), r.t_s, (r.cpu or 0.0) / (r.capacity_cores or 1.0)) for r in mine]
        axes.plot(*steps(cpu), color=color, label=f"{node} actors' CPU", gid=f"cpu-{node}")
        nic = _intervals([r for r in mine if r.nic_utilization is not None], "nic_utilization")
        if nic:
            axes.plot(
                *steps(nic[node]),
                color=color,
                linestyle=":",
                label=f"{node} {mine[-1].nic} use",
                gid=f"nic-{node}",
            )
    axes.axhline(SATURATED, color="grey", linewidth=0.8, linestyle="--")
    axes.set_ylabel("share of capacity")
    axes.set_ylim(bottom=0)
    axes.set_title("client CPU (of its cores) and NIC (of its speed) per node")
    _ticks(axes)
    _legend_outside(axes)
    return figure


def limits_section(result: RunResult, drawn: Mapping[str, Figure]) -> str:
    """Per phase, what set its rate (the cluster's verdict, then each node's) with the figures
    that show it and the rule that matched; then the resources over time."""
    rows = []
    floors = ""
    for phase in result.phases:
        if phase.bottleneck is None:
            continue
        verdicts = [("cluster", phase.bottleneck.cluster), *phase.bottleneck.nodes.items()]
        if len(verdicts) == 2:
            verdicts = verdicts[:1]
        cost = phase.client_cost
        spent = cost.brief() if cost is not None else ""
        if cost is not None and cost.floors is not None:
            floors = f"this node's floors: {cost.floors.describe()}"
        for scope, judged in verdicts:
            rows.append((phase.phase, scope, judged.kind, judged.explain(), spent))
            spent = ""
    if not rows:
        return ""
    headers = ("phase", "scope", "limited by", "evidence", "client cost")
    rules = "".join(
        f"<li><b>{_esc(kind)}</b>: {_esc(RULES[kind])}</li>"
        for kind in sorted({r[2] for r in rows})
    )
    chart = _chart(drawn, "resources", "client resources over time: no samples")
    note = f'<p class="meta">{_esc(floors)}</p>' if floors else ""
    return (
        f"<h2>Where the limit is</h2>{_table(headers, rows, 'prose')}{note}"
        f'<ul class="meta">{rules}</ul>\n{chart}'
    )


def schedule_figure(result: RunResult) -> Figure | None:
    """Per open-loop phase, the requests its schedule had in each second (a replay's: the
    log's, speed applied) beside those sent in it, seconds from the schedule's start."""
    phases = [p for p in result.phases if p.open_loop is not None and p.open_loop.sent_per_s]
    if not phases:
        return None
    figure = _figure()
    axes = figure.axes[0]
    for index, phase in enumerate(phases):
        color = COLORS[index % len(COLORS)]
        loop = phase.open_loop
        assert loop is not None
        if phase.replay is not None:
            due = phase.replay.scheduled_per_s
            points = [(s, s + 1.0, float(n)) for s, n in enumerate(due)]
            axes.plot(
                *steps(points),
                color=color,
                linestyle="--",
                linewidth=2.4,
                alpha=0.5,
                label=f"{phase.phase}: in the log",
                gid=f"scheduled-{index}",
            )
        points = [(s, s + 1.0, float(n)) for s, n in enumerate(loop.sent_per_s)]
        axes.plot(*steps(points), color=color, label=f"{phase.phase}: sent", gid=f"sent-{index}")
    axes.set_ylabel("requests per second")
    axes.set_ylim(bottom=0)
    axes.set_title("requests per second: scheduled and sent")
    _ticks(axes)
    axes.set_xlabel("seconds from the schedule's start")
    _legend_outside(axes)
    return figure


def open_loop_section(result: RunResult, drawn: Mapping[str, Figure]) -> str:
    """Per open-loop phase (a replay, an arrival): what it replayed, service and response
    times per operation, lateness; then the schedule against what was sent."""
    phases = [p for p in result.phases if p.open_loop is not None]
    if not phases:
        return ""
    parts = ["<h2>Open loop: schedule, lateness, service and response</h2>"]
    for phase in phases:
        for line in replay_lines(phase):
            parts.append(f'<p class="meta">{_esc(line)}</p>')
        parts.append(_table(OPEN_LOOP_COLUMNS, open_loop_rows(phase)))
        parts.append(f'<p class="meta">{_esc(open_loop_line(phase))}</p>')
    parts.append(
        '<p class="meta">service: from the request sent to its end (the store); response: '
        "from when it was due to its end (what a client of the store waited, queueing "
        "included); lateness: sent after due.</p>"
    )
    parts.append(_chart(drawn, "schedule", "requests per second: no samples"))
    return "\n".join(parts)


def _histograms(result: RunResult) -> Iterator[tuple[str, LatencyHistogram]]:
    """Each operation's latency histogram: a PUT or GET phase's own, a mixed phase's per op."""
    for phase in result.phases:
        if phase.by_op:
            for op, summary in phase.by_op.items():
                if summary.histogram is not None and summary.histogram.count:
                    yield f"{phase.phase}: {op}", summary.histogram
        elif phase.stats.latency.count:
            yield str(phase.phase), phase.stats.latency


def _log_ticks(axes: Axes, low: float, high: float) -> None:
    """Labels on a log axis that never crowd: 1-2-5 within two decades, powers of ten beyond."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    decades = math.log10(max(high, low * 1.0001) / low)
    subs = (1.0, 2.0, 5.0) if decades < 2 else (1.0,)
    axes.xaxis.set_major_locator(LogLocator(base=10, subs=subs))
    axes.xaxis.set_major_formatter(FuncFormatter(readable))
    axes.xaxis.set_minor_formatter(NullFormatter())


def latency_figure(result: RunResult) -> Figure | None:
    """Left: p50/p90/p99 per operation; right: the whole distribution as a CDF."""
    histograms = list(_histograms(result))
    if not histograms:
        return None
    from matplotlib.ticker import FuncFormatter

    figure = _figure(1, 2, (10.0, 4.0))
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
    bars.set_xticks(
        range(len(histograms)),
        [name.replace(": ", "\n") for name, _ in histograms],
        fontsize=8 if len(histograms) > 4 else 10,
    )
    bars.set_ylabel("ms")
    bars.set_title("latency percentiles per operation")
    bars.yaxis.set_major_formatter(FuncFormatter(readable))
    bars.grid(True, axis="y", color="#e0e0e0", linewidth=0.6)
    _legend_outside(bars)
    low, high = math.inf, 0.0
    for index, (name, hist) in enumerate(histograms):
        xs, ys, seen = [hist.min_s * 1e3], [0.0], 0
        for bucket, count in enumerate(hist.counts):
            if count:
                seen += count
                xs.append(max(min(bucket_upper_bound(bucket), hist.max_s), hist.min_s) * 1e3)
                ys.append(seen / hist.count)
        low, high = min(low, xs[0]), max(high, xs[-1])
        cdf.step(
            xs,
            ys,
            where="post",
            color=COLORS[index % len(COLORS)],
            label=name,
            gid=f"cdf-{name.replace(': ', '-')}",
        )
    cdf.set_xscale("log")
    _log_ticks(cdf, low, high)
    cdf.set_xlabel("latency, ms (log)")
    cdf.set_ylabel("fraction of operations")
    cdf.set_ylim(0, 1.02)
    cdf.set_title("latency distribution (CDF)")
    cdf.grid(True, color="#e0e0e0", linewidth=0.6)
    _legend_outside(cdf)
    return figure


def comparison_figure(named: Named) -> Figure | None:
    """GB/s and p99 per phase, one bar per configuration."""
    if len(named) < 2:
        return None
    from matplotlib.ticker import FuncFormatter

    phases = [str(p.phase) for p in named[0][1].phases]
    rate, scale = rate_unit(max((p.gbps * 1e9 for _, r in named for p in r.phases), default=0.0))
    figure = _figure(1, 2, (10.0, 3.6))
    width = 0.8 / len(named)
    for axes, metric, title, unit, value in (
        (figure.axes[0], "gbps", "throughput per phase", rate, lambda p: p.gbps * 1e9 / scale),
        (figure.axes[1], "p99", "p99 latency per phase", "ms", lambda p: p.latency.p99_s * 1e3),
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
        axes.set_xticks(range(len(phases)), phases, fontsize=8 if len(phases) > 5 else 10)
        axes.yaxis.set_major_formatter(FuncFormatter(readable))
        axes.set_ylabel(unit)
        axes.set_title(title)
        axes.grid(True, axis="y", color="#e0e0e0", linewidth=0.6)
    _legend_outside(figure.axes[1])
    return figure


def au_figure(result: RunResult) -> Figure | None:
    """Each node's accelerator utilization over time in train phases, with the threshold and
    the epochs marked."""
    rows = [row for row in result.timeseries if row.au is not None]
    if not rows:
        return None
    figure = _figure()
    axes = figure.axes[0]
    _backdrop(axes, result)
    for index, (node, points) in enumerate(sorted(_intervals(rows, "au").items())):
        xs, ys = steps(points)
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
    _ticks(axes)
    _legend_outside(axes)
    return figure


def figures(result: RunResult, compared: Named = ()) -> dict[str, Figure]:
    """Every chart the report of `result` draws, by the id it has on the page."""
    drawn = {
        "throughput": throughput_figure(result),
        "operations": operations_figure(result),
        "latency": latency_figure(result),
        "concurrency": concurrency_figure(result),
        "resources": resources_figure(result),
        "schedule": schedule_figure(result),
        "au": au_figure(result),
        "comparison": comparison_figure(compared),
    }
    return {name: figure for name, figure in drawn.items() if figure is not None}


def _chart(drawn: Mapping[str, Figure], name: str, missing: str) -> str:
    figure = drawn.get(name)
    return _svg(figure, name) if figure is not None else f"<p class='meta'>{missing}</p>"


def training_section(result: RunResult, drawn: Mapping[str, Figure]) -> str:
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
    parts.append(_chart(drawn, "au", "accelerator utilization over time: no samples"))
    return "\n".join(parts)


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]], kind: str = "") -> str:
    """A table; `kind` "prose" wraps and left-aligns its cells (sentences, not figures)."""
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    opened = f'<table class="{kind}">' if kind else "<table>"
    return f"{opened}<tr>{head}</tr>{body}</table>"


def comparison_section(named: Named, drawn: Mapping[str, Figure]) -> str:
    """Configurations (or runs) side by side: the ratio table, each against the first with
    the interval of the difference and a verdict, and the bars."""
    if len(named) < 2:
        return ""
    table = _table(CONFIGURATION_COLUMNS, configuration_rows(named))
    first_name, first = named[0]
    against = []
    for name, result in named[1:]:
        differences = compare(first, result)
        notes = "".join(
            f'<p class="meta">{_esc(note)}</p>'
            for note in compare_notes(differences, first, result)
        )
        against.append(
            f"<h3>{_esc(name)} (B) against {_esc(first_name)} (A)</h3>"
            f"{_table(COMPARE_COLUMNS, compare_rows(differences))}{notes}"
        )
    return f"""<h2>Configuration comparison</h2>
<p class="meta">ratio: GB/s over the first's ({_esc(first_name)})</p>{table}
{"".join(against)}
{_chart(drawn, "comparison", "")}"""


def render_comparison_html(named: Named) -> str:
    """Several results side by side (`s3dlio-ray report A.json B.json`): what each run was, the
    comparison, then each run's summary."""
    drawn = {"comparison": comparison_figure(named)}
    runs = "".join(
        f"<li><b>{_esc(name)}</b>: {_esc(result.workload)} run {_esc(result.run_id)} "
        f"({_esc(verdict(result))}) &middot; endpoint "
        f"{_esc(', '.join(result.endpoints or (result.endpoint,)))} &middot; "
        f"{result.cluster.executor} executor, {len(result.cluster.nodes)} node(s), "
        f"{result.cluster.actors} actor(s)</li>"
        for name, result in named
    )
    summaries = "".join(
        f"<h2>{_esc(name)}</h2>{_table(summary_columns(), summary_rows(result))}"
        for name, result in named
    )
    names = ", ".join(name for name, _ in named)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>s3dlio-ray comparison: {_esc(names)}</title>
<style>{STYLE}</style></head><body>
<h1>s3dlio-ray comparison: {_esc(names)}</h1>
<ul class="meta">{runs}</ul>
{comparison_section(named, {k: v for k, v in drawn.items() if v is not None})}
{summaries}
</body></html>
"""


def render_html(result: RunResult, compared: Named = ()) -> str:
    """The report of one result; with `compared` (each configuration of the run, this one
    among them, with its name) a comparison section."""
    word = verdict(result)
    status = f'<span class="{"ok" if word == "OK" else "failed"}">{word}</span>'
    cluster = result.cluster
    endpoints = endpoint_rows(result)
    by_endpoint = (
        f"<h2>By endpoint</h2>{_table(endpoint_columns(), endpoints)}"
        if any(len(p.endpoints) > 1 for p in result.phases)
        else ""
    )
    error = f'<p class="failed">{_esc(result.error)}</p>' if result.error else ""
    addresses = ", ".join(result.endpoints or (result.endpoint,))
    drawn = figures(result, compared)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>s3dlio-ray {_esc(result.workload)} {_esc(result.run_id)}</title>
<style>{STYLE}</style></head><body>
<h1>s3dlio-ray {_esc(result.workload)} &mdash; run {_esc(result.run_id)} {status}</h1>
<p class="meta">endpoint {_esc(addresses)} &middot; {_esc(result.http_version)} &middot;
profile {_esc(result.profile)} &middot; {cluster.executor} executor,
{len(cluster.nodes)} node(s), {cluster.actors} actor(s) &middot;
s3dlio-ray {_esc(result.tool_version)}</p>{error}
<h2>Summary</h2>{_table(summary_columns(), summary_rows(result))}
<h2>By node</h2>{_table(node_columns(), node_rows(result))}
{by_endpoint}
{open_loop_section(result, drawn)}
{limits_section(result, drawn)}
{training_section(result, drawn)}
{changes_section(result)}
<h2>Throughput over time</h2>
{_chart(drawn, "throughput", "throughput over time: no samples (the run was under a second)")}
<h2>Objects per second</h2>
{_chart(drawn, "operations", "objects per second: no samples")}
<h2>Latency per operation</h2>
{_chart(drawn, "latency", "latency: no completed operation")}
<h2>Concurrency over time</h2>
{_chart(drawn, "concurrency", "concurrency over time: no samples")}
{comparison_section(compared, drawn)}
</body></html>
"""

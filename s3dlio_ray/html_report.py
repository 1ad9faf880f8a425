"""The HTML report: one self-contained file (inline CSS and SVG, no script, nothing fetched)."""

from __future__ import annotations

import html
from collections.abc import Sequence

from s3dlio_ray.compare import CONFIGURATION_COLUMNS, configuration_rows
from s3dlio_ray.report import NODE_COLUMNS, SUMMARY_COLUMNS, node_rows, summary_rows

WIDTH, HEIGHT, PAD = 760, 260, 48
COLORS = ["#1f77b4", "#d62728", "#2ca02c", "#ff7f0e", "#9467bd", "#8c564b", "#e377c2", "#17becf"]

Series = dict[str, list[tuple[float, float]]]

STYLE = """
body { font-family: system-ui, sans-serif; margin: 24px; color: #222; }
h1 { font-size: 20px; } h2 { font-size: 16px; margin-top: 28px; }
table { border-collapse: collapse; font-size: 13px; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.ok { color: #2ca02c; font-weight: bold; } .failed { color: #d62728; font-weight: bold; }
svg { background: #fafafa; border: 1px solid #ddd; margin: 6px 0; }
.meta { color: #555; font-size: 13px; }
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _scale(value: float, lo: float, hi: float, out_lo: float, out_hi: float) -> float:
    if hi <= lo:
        return (out_lo + out_hi) / 2
    return out_lo + (value - lo) / (hi - lo) * (out_hi - out_lo)


def _x_ticks(x_lo: float, x_hi: float) -> list[str]:
    return [
        f'<text x="{_scale(x, x_lo, x_hi, PAD, WIDTH - PAD):.1f}" y="{HEIGHT - PAD + 14}" '
        f'text-anchor="middle" font-size="10">{x:.3g}</text>'
        for x in (x_lo, (x_lo + x_hi) / 2, x_hi)
    ]


def _axes(title: str, x_label: str, y_label: str, y_max: float) -> list[str]:
    parts = [
        f'<text x="{WIDTH / 2}" y="18" text-anchor="middle" font-size="14">{_esc(title)}</text>',
        f'<line x1="{PAD}" y1="{HEIGHT - PAD}" x2="{WIDTH - PAD}" y2="{HEIGHT - PAD}" '
        'stroke="#444"/>',
        f'<line x1="{PAD}" y1="{PAD}" x2="{PAD}" y2="{HEIGHT - PAD}" stroke="#444"/>',
        f'<text x="{WIDTH / 2}" y="{HEIGHT - 10}" text-anchor="middle" font-size="12">'
        f"{_esc(x_label)}</text>",
        f'<text x="12" y="{HEIGHT / 2}" font-size="12" transform="rotate(-90 12 {HEIGHT / 2})" '
        f'text-anchor="middle">{_esc(y_label)}</text>',
    ]
    for fraction in (0.0, 0.5, 1.0):
        y = _scale(fraction, 0, 1, HEIGHT - PAD, PAD)
        parts.append(
            f'<text x="{PAD - 4}" y="{y + 4}" text-anchor="end" font-size="10">'
            f"{y_max * fraction:.3g}</text>"
        )
    return parts


def _legend(labels: Sequence[str]) -> list[str]:
    return [
        f'<rect x="{WIDTH - PAD - 150}" y="{PAD + 14 * i - 8}" width="10" height="10" '
        f'fill="{COLORS[i % len(COLORS)]}"/><text x="{WIDTH - PAD - 135}" y="{PAD + 14 * i + 1}" '
        f'font-size="11">{_esc(label)}</text>'
        for i, label in enumerate(labels)
    ]


def line_chart(title: str, series: Series, x_label: str, y_label: str) -> str:
    """Lines over time, one per label; an empty chart says so rather than drawing nothing."""
    points = [p for line in series.values() for p in line]
    if not points:
        return f"<p class='meta'>{_esc(title)}: no samples (the run was shorter than a second)</p>"
    x_lo, x_hi = min(p[0] for p in points), max(p[0] for p in points)
    y_max = max(p[1] for p in points) or 1.0
    parts = _axes(title, x_label, y_label, y_max) + _x_ticks(x_lo, x_hi)
    for i, (label, line) in enumerate(sorted(series.items())):
        coords = " ".join(
            f"{_scale(x, x_lo, x_hi, PAD, WIDTH - PAD):.1f},"
            f"{_scale(y, 0, y_max, HEIGHT - PAD, PAD):.1f}"
            for x, y in sorted(line)
        )
        parts.append(
            f'<polyline class="series" data-label="{_esc(label)}" fill="none" stroke-width="2" '
            f'stroke="{COLORS[i % len(COLORS)]}" points="{coords}"/>'
        )
    parts += _legend(sorted(series))
    return f'<svg width="{WIDTH}" height="{HEIGHT}" role="img">{"".join(parts)}</svg>'


def bar_chart(title: str, groups: dict[str, dict[str, float]], y_label: str) -> str:
    """Grouped bars: one group per operation, one bar per statistic."""
    labels = list(dict.fromkeys(k for bars in groups.values() for k in bars))
    values = [v for bars in groups.values() for v in bars.values()]
    if not values:
        return f"<p class='meta'>{_esc(title)}: no data</p>"
    y_max = max(values) or 1.0
    parts = _axes(title, "operation", y_label, y_max)
    slot = (WIDTH - 2 * PAD - 160) / max(len(groups), 1)
    width = slot / (len(labels) + 1)
    for g, (group, bars) in enumerate(sorted(groups.items())):
        x0 = PAD + g * slot + width / 2
        for b, label in enumerate(labels):
            value = bars.get(label, 0.0)
            top = _scale(value, 0, y_max, HEIGHT - PAD, PAD)
            parts.append(
                f'<rect class="bar" x="{x0 + b * width:.1f}" y="{top:.1f}" '
                f'width="{width * 0.9:.1f}" height="{HEIGHT - PAD - top:.1f}" '
                f'fill="{COLORS[b % len(COLORS)]}"/>'
            )
        parts.append(
            f'<text x="{x0 + len(labels) * width / 2:.1f}" y="{HEIGHT - PAD + 14}" '
            f'text-anchor="middle" font-size="12">{_esc(group)}</text>'
        )
    parts += _legend(labels)
    return f'<svg width="{WIDTH}" height="{HEIGHT}" role="img">{"".join(parts)}</svg>'


def _table(headers: Sequence[str], rows: Sequence[Sequence[object]]) -> str:
    head = "".join(f"<th>{_esc(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{_esc(c)}</td>" for c in row) + "</tr>" for row in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def comparison_section(named: Sequence[tuple[str, dict]]) -> str:
    """Configurations (or runs) side by side: the ratio table and GB/s and p99 per phase."""
    if len(named) < 2:
        return ""
    table = _table(CONFIGURATION_COLUMNS, configuration_rows(list(named)))
    gbps: dict[str, dict[str, float]] = {}
    p99: dict[str, dict[str, float]] = {}
    for name, doc in named:
        for phase in doc["phases"]:
            gbps.setdefault(phase["phase"], {})[name] = phase["gbps"]
            p99.setdefault(phase["phase"], {})[name] = phase["latency"]["p99_s"] * 1e3
    return f"""<h2>Configuration comparison</h2>
<p class="meta">ratio: GB/s over the first's ({_esc(named[0][0])})</p>{table}
{bar_chart("GB/s per phase and configuration", gbps, "GB/s")}
{bar_chart("p99 latency per phase and configuration", p99, "ms")}"""


def render_html(doc: dict, compared: Sequence[tuple[str, dict]] = ()) -> str:
    """The report of one result document (what write_json wrote); with `compared` (name and
    document of each configuration of the run, this one among them) a comparison section."""
    phases = doc["phases"]
    summary = _table(SUMMARY_COLUMNS, summary_rows(doc))
    nodes = _table(NODE_COLUMNS, node_rows(doc))
    throughput: Series = {}
    concurrency: Series = {}
    for row in doc["timeseries"]:
        throughput.setdefault(f"{row['node']} {row['op']}", []).append((row["t_s"], row["gbps"]))
        concurrency.setdefault(f"{row['node']} limit", []).append((row["t_s"], row["concurrency"]))
        concurrency.setdefault(f"{row['node']} in flight", []).append(
            (row["t_s"], row["in_flight"])
        )
    latency = {
        p["phase"]: {
            "p50": p["latency"]["p50_s"] * 1e3,
            "p90": p["latency"]["p90_s"] * 1e3,
            "p99": p["latency"]["p99_s"] * 1e3,
        }
        for p in phases
    }
    status = '<span class="ok">OK</span>' if doc["ok"] else '<span class="failed">FAILED</span>'
    cluster = doc["cluster"]
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>s3dlio-ray {_esc(doc["workload"])} {_esc(doc["run_id"])}</title>
<style>{STYLE}</style></head><body>
<h1>s3dlio-ray {_esc(doc["workload"])} &mdash; run {_esc(doc["run_id"])} {status}</h1>
<p class="meta">endpoint {_esc(doc["endpoint"])} &middot; {_esc(doc["http_version"])} &middot;
profile {_esc(doc["profile"])} &middot; {len(cluster["nodes"])} node(s),
{cluster["actors"]} actor(s) &middot; s3dlio-ray {_esc(doc["tool"]["version"])}</p>
<h2>Summary</h2>{summary}
<h2>By node</h2>{nodes}
<h2>Throughput over time</h2>
{line_chart("GB/s per node and operation", throughput, "seconds", "GB/s")}
<h2>Latency per operation</h2>
{bar_chart("object latency percentiles", latency, "ms")}
<h2>Concurrency over time</h2>
{line_chart("concurrency limit and in flight per node", concurrency, "seconds", "requests")}
{comparison_section(compared)}
</body></html>
"""

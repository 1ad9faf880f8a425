"""Two results side by side, as `warp cmp` does, and more: per phase, B against A with ratios,
the interval of each difference and whether it is bigger than the noise (batch means of one
run's time series, or repeats), and what makes the two different workloads; and the
configurations of one run side by side."""

from __future__ import annotations

import statistics
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.table import Table

from s3dlio_ray._internal.model.noise import (
    BATCH_S,
    MIN_SAMPLES,
    Estimate,
    Verdict,
    batch_means,
    estimate,
    welch,
)
from s3dlio_ray._internal.model.results import PhaseResult, RunResult
from s3dlio_ray._internal.model.units import rate_unit


@dataclass(frozen=True)
class Metric:
    name: str
    value: Callable[[PhaseResult], float]
    higher_is_better: bool = True
    series: str | None = None
    """The time series' column a single run's batch means come from (None: repeats only)."""


METRICS: tuple[Metric, ...] = (
    Metric("GB/s", lambda p: p.gbps, series="bytes"),
    Metric("ops/s", lambda p: p.ops_per_s, series="ops"),
    Metric("p50 ms", lambda p: p.latency.p50_s * 1e3, higher_is_better=False),
    Metric("p99 ms", lambda p: p.latency.p99_s * 1e3, higher_is_better=False),
    Metric("errors", lambda p: p.errors, higher_is_better=False),
)


@dataclass(frozen=True)
class Runs:
    """What one side of a comparison measured: one run, or the repeats of one workload
    (`run --repeat N`), whose phases' values are independent samples."""

    results: tuple[RunResult, ...]

    @property
    def first(self) -> RunResult:
        return self.results[0]

    def phases(self) -> list[str]:
        return [str(p.phase) for p in self.first.phases]

    def value(self, phase: str, metric: Metric) -> float | None:
        """The metric's mean over the runs that have the phase."""
        values = self.values(phase, metric)
        return statistics.fmean(values) if values else None

    def values(self, phase: str, metric: Metric) -> list[float]:
        return [float(metric.value(p)) for r in self.results if (p := r.phase(phase))]

    def estimate(self, phase: str, metric: Metric) -> Estimate | None:
        """The metric's mean with its interval: over repeats when there are some, else from
        batch means of one run's time series (rates only); None when neither says enough."""
        if len(self.results) > 1:
            return estimate(self.values(phase, metric), f"{len(self.results)} repeats")
        if metric.series is None:
            return None
        rows: dict[float, tuple[float, float]] = {}
        for row in self.first.timeseries:
            if row.op == row.phase == phase and row.interval_s is not None:
                _, moved = rows.get(row.t_s, (0.0, 0.0))
                rows[row.t_s] = (row.interval_s, moved + getattr(row, metric.series))
        scale = 1e9 if metric.series == "bytes" else 1.0
        batches = [m / scale for m in batch_means([rows[t] for t in sorted(rows)])]
        return estimate(batches, f"{len(batches)} batches of {BATCH_S:g} s")


@dataclass(frozen=True)
class Difference:
    phase: str
    metric: str
    a: float
    b: float
    verdict: Verdict | None = None
    """B against A with the interval of the difference; None where there is no interval."""
    method: str = ""
    """How the samples behind the interval were made, per side."""

    @property
    def ratio(self) -> float | None:
        """B over A; None where A is zero."""
        return self.b / self.a if self.a else None

    @property
    def word(self) -> str:
        """faster, slower, within noise, or "-" where the runs say too little."""
        return self.verdict.word if self.verdict is not None else "-"


def compare(a: RunResult | Runs, b: RunResult | Runs) -> list[Difference]:
    """Every metric of every phase the two share, in A's phase order, with Welch's t verdict
    wherever both sides have samples."""
    first, second = _runs(a), _runs(b)
    differences = []
    for phase in first.phases():
        if phase not in second.phases():
            continue
        for metric in METRICS:
            value_a, value_b = first.value(phase, metric), second.value(phase, metric)
            if value_a is None or value_b is None:
                continue
            ours, theirs = first.estimate(phase, metric), second.estimate(phase, metric)
            verdict = method = None
            if ours is not None and theirs is not None:
                verdict = welch(ours, theirs, metric.higher_is_better)
                method = f"A {ours.method}, B {theirs.method}"
            differences.append(
                Difference(phase, metric.name, value_a, value_b, verdict, method or "")
            )
    return differences


def _runs(side: RunResult | Runs) -> Runs:
    return side if isinstance(side, Runs) else Runs((side,))


def mismatches(a: RunResult, b: RunResult) -> list[str]:
    """What makes A and B different workloads, so a difference may not be the store's."""
    said = []
    for key, what in (
        ("object_size", "object size"),
        ("phases", "phases"),
        ("client", "client"),
        ("mix", "mix"),
    ):
        if key in a.settings and key in b.settings and a.settings[key] != b.settings[key]:
            said.append(f"{what} ({_plain(a.settings[key])} vs {_plain(b.settings[key])})")
    ends_a, ends_b = a.endpoints or (a.endpoint,), b.endpoints or (b.endpoint,)
    if ends_a != ends_b:
        said.append(f"endpoints ({', '.join(ends_a)} vs {', '.join(ends_b)})")
    shape_a = (len(a.cluster.nodes), a.cluster.actors)
    shape_b = (len(b.cluster.nodes), b.cluster.actors)
    if shape_a != shape_b:
        said.append(
            f"cluster ({shape_a[0]} node(s), {shape_a[1]} actor(s) vs {shape_b[0]} node(s), "
            f"{shape_b[1]} actor(s))"
        )
    return said


def _plain(value: object) -> str:
    if isinstance(value, list):
        return ",".join(str(v) for v in value)
    if isinstance(value, int) and not isinstance(value, bool):
        return rate_unit("binary").size(value)
    return str(value)


COMPARE_COLUMNS = ("phase", "metric", "A", "B", "B/A", "B-A (95% interval)", "verdict")


def compare_rows(differences: Sequence[Difference]) -> list[list[str]]:
    rows = []
    for diff in differences:
        ratio = f"{diff.ratio:.2f}x" if diff.ratio is not None else "-"
        spread = diff.verdict.describe(diff.a) if diff.verdict is not None else "-"
        rows.append(
            [diff.phase, diff.metric, f"{diff.a:.3f}", f"{diff.b:.3f}", ratio, spread, diff.word]
        )
    return rows


def compare_notes(
    differences: Sequence[Difference], a: RunResult | Runs, b: RunResult | Runs
) -> list[str]:
    """The lines under the table: how the intervals were made, and what differs."""
    first, second = _runs(a), _runs(b)
    notes = []
    methods = {d.method for d in differences if d.method}
    for method in sorted(methods):
        notes.append(f"intervals: {method}")
    if any(len(side.results) == 1 for side in (first, second)):
        notes.append(
            f"a single run's interval comes from the means of {BATCH_S:g}-second batches of its "
            "time series: one second's rate leans on the second before, batches that long "
            "hardly do; --repeat N (N >= 3) measures run-to-run spread instead"
        )
    if any(d.verdict is None for d in differences if d.metric in ("GB/s", "ops/s")):
        notes.append(
            f"'-': fewer than {MIN_SAMPLES} samples on a side (a phase under "
            f"{MIN_SAMPLES * BATCH_S:g} s, or latency without repeats): no interval, no verdict"
        )
    mismatched = mismatches(first.first, second.first)
    if mismatched:
        notes.append(
            "warning: A and B are different workloads: " + "; ".join(mismatched) + " (a "
            "difference may not be the store's)"
        )
    return notes


def compare_table(
    differences: Sequence[Difference], a: RunResult | Runs, b: RunResult | Runs
) -> Table:
    first, second = _runs(a), _runs(b)
    title = (
        f"A = {first.first.workload} {first.first.run_id}   "
        f"B = {second.first.workload} {second.first.run_id}"
    )
    table = Table(title=title, title_justify="left")
    for column in COMPARE_COLUMNS:
        table.add_column(column, justify="left" if column in ("phase", "metric") else "right")
    for row in compare_rows(differences):
        table.add_row(*row)
    return table


CONFIGURATION_COLUMNS = ("phase", "configuration", "GB/s", "p99 ms", "errors", "ratio")


Named = Sequence[tuple[str, RunResult]]
"""Results with the name each goes by in a comparison (a configuration, a file)."""


def configuration_rows(named: Named) -> list[list[str]]:
    """Configurations of one run side by side, per phase: GB/s, p99 and GB/s over the first's."""
    rows = []
    for first in named[0][1].phases:
        for name, result in named:
            mine = result.phase(first.phase)
            if mine is None:
                continue
            ratio = mine.gbps / first.gbps if first.gbps else None
            rows.append(
                [
                    str(first.phase),
                    name,
                    f"{mine.gbps:.3f}",
                    f"{mine.latency.p99_s * 1e3:.1f}",
                    str(mine.errors),
                    f"{ratio:.2f}x" if ratio is not None else "-",
                ]
            )
    return rows


def configuration_table(named: Named) -> Table:
    table = Table(title="configurations (ratio: GB/s over the first's)", title_justify="left")
    for column in CONFIGURATION_COLUMNS:
        table.add_column(
            column, justify="left" if column in ("phase", "configuration") else "right"
        )
    for row in configuration_rows(named):
        table.add_row(*row)
    return table

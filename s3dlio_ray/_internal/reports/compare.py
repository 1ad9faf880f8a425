"""Two results side by side, as `warp cmp` does: per phase, B against A with ratios; and the
configurations of one run side by side."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from rich.table import Table

from s3dlio_ray._internal.model.results import PhaseResult, RunResult

METRICS: tuple[tuple[str, Callable[[PhaseResult], float]], ...] = (
    ("GB/s", lambda p: p.gbps),
    ("ops/s", lambda p: p.ops_per_s),
    ("p50 ms", lambda p: p.latency.p50_s * 1e3),
    ("p99 ms", lambda p: p.latency.p99_s * 1e3),
    ("errors", lambda p: p.errors),
)


@dataclass(frozen=True)
class Difference:
    phase: str
    metric: str
    a: float
    b: float

    @property
    def ratio(self) -> float | None:
        """B over A; None where A is zero."""
        return self.b / self.a if self.a else None


def compare(a: RunResult, b: RunResult) -> list[Difference]:
    """Every metric of every phase the two runs share, in A's phase order."""
    return [
        Difference(str(phase.phase), name, float(value(phase)), float(value(other)))
        for phase in a.phases
        if (other := b.phase(phase.phase)) is not None
        for name, value in METRICS
    ]


def compare_table(a: RunResult, b: RunResult) -> Table:
    table = Table(
        title=f"A = {a.workload} {a.run_id}   B = {b.workload} {b.run_id}", title_justify="left"
    )
    for column in ("phase", "metric", "A", "B", "B/A"):
        table.add_column(column, justify="left" if column in ("phase", "metric") else "right")
    for diff in compare(a, b):
        ratio = f"{diff.ratio:.2f}x" if diff.ratio is not None else "-"
        table.add_row(diff.phase, diff.metric, f"{diff.a:.3f}", f"{diff.b:.3f}", ratio)
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

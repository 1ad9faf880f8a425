"""Two result files side by side, as `warp cmp` does: per phase, B against A with ratios."""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table

METRICS = (
    ("GB/s", lambda p: p["gbps"]),
    ("ops/s", lambda p: p["ops_per_s"]),
    ("p50 ms", lambda p: p["latency"]["p50_s"] * 1e3),
    ("p99 ms", lambda p: p["latency"]["p99_s"] * 1e3),
    ("errors", lambda p: p["errors"]),
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


def compare(a: dict, b: dict) -> list[Difference]:
    """Every metric of every phase the two runs share, in A's phase order."""
    b_phases = {p["phase"]: p for p in b["phases"]}
    return [
        Difference(
            phase["phase"], name, float(value(phase)), float(value(b_phases[phase["phase"]]))
        )
        for phase in a["phases"]
        if phase["phase"] in b_phases
        for name, value in METRICS
    ]


def compare_table(a: dict, b: dict) -> Table:
    table = Table(
        title=f"A = {a['workload']} {a['run_id']}   B = {b['workload']} {b['run_id']}",
        title_justify="left",
    )
    for column in ("phase", "metric", "A", "B", "B/A"):
        table.add_column(column, justify="left" if column in ("phase", "metric") else "right")
    for diff in compare(a, b):
        ratio = f"{diff.ratio:.2f}x" if diff.ratio is not None else "-"
        table.add_row(diff.phase, diff.metric, f"{diff.a:.3f}", f"{diff.b:.3f}", ratio)
    return table


CONFIGURATION_COLUMNS = ("phase", "configuration", "GB/s", "p99 ms", "errors", "ratio")


def configuration_rows(named: list[tuple[str, dict]]) -> list[list[str]]:
    """Configurations of one run side by side, per phase: GB/s, p99 and GB/s over the first's."""
    rows = []
    first = {p["phase"]: p for p in named[0][1]["phases"]}
    for phase in first:
        for name, doc in named:
            mine = next((p for p in doc["phases"] if p["phase"] == phase), None)
            if mine is None:
                continue
            ratio = mine["gbps"] / first[phase]["gbps"] if first[phase]["gbps"] else None
            rows.append(
                [
                    phase,
                    name,
                    f"{mine['gbps']:.3f}",
                    f"{mine['latency']['p99_s'] * 1e3:.1f}",
                    str(mine["errors"]),
                    f"{ratio:.2f}x" if ratio is not None else "-",
                ]
            )
    return rows


def configuration_table(named: list[tuple[str, dict]]) -> Table:
    table = Table(title="configurations (ratio: GB/s over the first's)", title_justify="left")
    for column in CONFIGURATION_COLUMNS:
        table.add_column(
            column, justify="left" if column in ("phase", "configuration") else "right"
        )
    for row in configuration_rows(named):
        table.add_row(*row)
    return table

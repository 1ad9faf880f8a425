"""A workload run N times (`run --repeat N`): the file that names the N results and holds each
phase's mean with its interval, and how `compare` and `report` read either kind of file."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from s3dlio_ray._internal.model.noise import CONFIDENCE, Estimate
from s3dlio_ray._internal.reports.compare import METRICS, Metric, Runs
from s3dlio_ray._internal.reports.files import load_result

KIND = "s3dlio-ray repeats"
SHOWN = ("GB/s", "ops/s", "p99 ms")
"""The metrics a repeat set's table gives a mean and interval for."""


def write_repeats(path: Path, results: Sequence[Path]) -> Path:
    """The set file: the results (relative to it) and each phase's estimates."""
    runs = Runs(tuple(load_result(p) for p in results))
    doc: dict[str, Any] = {
        "kind": KIND,
        "version": 1,
        "confidence": CONFIDENCE,
        "results": [str(Path(p).resolve().relative_to(path.parent.resolve())) for p in results],
        "phases": {
            phase: {
                metric.name: _estimate_doc(runs.estimate(phase, metric))
                for metric in METRICS
                if metric.name in SHOWN
            }
            for phase in runs.phases()
        },
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(doc, indent=2) + "\n")
    return path


def _estimate_doc(estimate: Estimate | None) -> dict[str, Any] | None:
    if estimate is None:
        return None
    return {
        "mean": estimate.mean,
        "half_width": estimate.half_width,
        "samples": list(estimate.samples),
    }


def load_runs(path: str | Path) -> Runs:
    """A result file as one run, or a repeat set's results."""
    source = Path(path)
    try:
        doc = json.loads(source.read_text())
    except (OSError, json.JSONDecodeError):
        return Runs((load_result(source),))
    if not isinstance(doc, dict) or doc.get("kind") != KIND:
        return Runs((load_result(source),))
    return Runs(tuple(load_result(source.parent / name) for name in doc["results"]))


def repeat_rows(runs: Runs) -> list[list[str]]:
    """Per phase: each shown metric's mean ± half-width, and each run's GB/s."""
    rows = []
    for phase in runs.phases():
        cells = [phase]
        for metric in METRICS:
            if metric.name in SHOWN:
                cells.append(_mean_pm(runs.estimate(phase, metric), runs, phase, metric))
        cells.append(" ".join(f"{v:.3f}" for v in runs.values(phase, METRICS[0])))
        rows.append(cells)
    return rows


def _mean_pm(estimate: Estimate | None, runs: Runs, phase: str, metric: Metric) -> str:
    if estimate is None:
        value = runs.value(phase, metric)
        return "-" if value is None else f"{value:.3f}"
    return f"{estimate.mean:.3f} ± {estimate.half_width:.3f}"


REPEAT_COLUMNS = ("phase", *(f"{name} (95%)" for name in SHOWN), "GB/s of each run")

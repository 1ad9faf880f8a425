"""Result files and the summary a person reads in five seconds."""

from __future__ import annotations

import json
import platform
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from s3dlio_ray import __version__
from s3dlio_ray.engine import PhaseResult
from s3dlio_ray.runner import RunResult

SCHEMA_VERSION = 1


def phase_summary(phase: PhaseResult) -> dict[str, object]:
    latency = phase.stats.latency.summary()
    return {
        "phase": phase.phase,
        "objects": phase.stats.ops,
        "bytes": phase.stats.bytes,
        "elapsed_s": phase.elapsed_s,
        "gbps": phase.gbps,
        "ops_per_s": phase.ops_per_s,
        "latency": latency,
        "ttfb": phase.stats.ttfb.summary() if phase.stats.ttfb.count else None,
        "errors": phase.stats.errors,
        "retries": phase.stats.retries,
        "verified": phase.verified,
        "verify_failures": phase.verify_failures,
        "concurrency": {
            "start": phase.start_concurrency,
            "final": phase.final_concurrency,
            "peak_in_flight": phase.peak_concurrency,
            "samples": [asdict(s) for s in phase.concurrency],
        },
        "failed": phase.failed,
        "stats": phase.stats.to_dict(),
    }


def result_dict(result: RunResult) -> dict[str, object]:
    """The JSON result: no credentials are ever part of Settings, so all of it may be written."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "s3dlio-ray", "version": __version__},
        "run_id": result.run_id,
        "ok": result.ok,
        "error": result.error,
        "workload": result.settings.name,
        "seed": result.seed,
        "endpoint": result.endpoint,
        "bucket": result.bucket,
        "bucket_created": result.bucket_created,
        "profile": result.profile,
        "http_version": result.http_version,
        "settings": asdict(result.settings),
        "environment": {
            "python": platform.python_version(),
            "platform": platform.platform(),
            "host": platform.node(),
        },
        "phases": [phase_summary(p) for p in result.phases],
        "cleanup": asdict(result.cleanup) if result.cleanup else None,
    }


def write_json(result: RunResult, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result_dict(result), indent=2) + "\n")
    return target


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def summary_table(result: RunResult) -> Table:
    table = Table(
        title=f"s3dlio-ray {result.settings.name}  run {result.run_id}  "
        f"{result.endpoint}  {result.http_version}  profile {result.profile}",
        title_justify="left",
    )
    for column in (
        "phase",
        "objects",
        "GB/s",
        "ops/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "retries",
        "verified",
        "concurrency",
    ):
        table.add_column(column, justify="left" if column == "phase" else "right")
    for phase in result.phases:
        lat = phase.stats.latency.summary()
        verified = (
            "-"
            if phase.phase != "get"
            else f"{phase.verified}/{phase.stats.ops + phase.stats.errors}"
        )
        table.add_row(
            phase.phase,
            str(phase.stats.ops),
            f"{phase.gbps:.3f}",
            f"{phase.ops_per_s:.1f}",
            _ms(lat["p50_s"]),
            _ms(lat["p90_s"]),
            _ms(lat["p99_s"]),
            _ms(lat["max_s"]),
            str(phase.stats.errors),
            str(phase.stats.retries),
            verified,
            f"{phase.start_concurrency}->{phase.final_concurrency}",
        )
    return table


def print_summary(result: RunResult, console: Console, result_path: Path | None) -> None:
    console.print(summary_table(result))
    if result.cleanup is not None:
        c = result.cleanup
        removed = "bucket removed" if c.bucket_removed else "bucket kept"
        console.print(
            f"cleanup: {c.deleted} objects deleted, {c.aborted_uploads} uploads aborted, {removed}"
            + (f", {len(c.failed)} deletes FAILED" if c.failed else "")
        )
    for phase in result.phases:
        for reason in list(phase.failed.values())[:5]:
            console.print(f"[red]{phase.phase} failed[/red] {reason}", highlight=False)
        if len(phase.failed) > 5:
            console.print(f"... and {len(phase.failed) - 5} more {phase.phase} failures")
    if result_path is not None:
        console.print(f"result: {result_path}")
    console.print("[green]OK[/green]" if result.ok else "[red]FAILED[/red]")

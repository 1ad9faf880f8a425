"""Result files and the summary a person reads in five seconds."""

from __future__ import annotations

import json
import platform
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.table import Table

from s3dlio_ray import __version__
from s3dlio_ray.cluster.aggregate import ActorPhaseResult, by_node
from s3dlio_ray.engine import PhaseResult
from s3dlio_ray.runner import RunResult
from s3dlio_ray.stats import OpStats

SCHEMA_VERSION = 1


def stats_summary(stats: OpStats, elapsed_s: float) -> dict[str, object]:
    """Rates over the phase's wall time, percentiles from the merged histogram."""
    return {
        "objects": stats.ops,
        "bytes": stats.bytes,
        "gbps": stats.bytes / elapsed_s / 1e9 if elapsed_s > 0 else 0.0,
        "ops_per_s": stats.ops / elapsed_s if elapsed_s > 0 else 0.0,
        "latency": stats.latency.summary(),
        "ttfb": stats.ttfb.summary() if stats.ttfb.count else None,
        "errors": stats.errors,
        "retries": stats.retries,
    }


def phase_summary(phase: PhaseResult, parts: Sequence[ActorPhaseResult]) -> dict[str, object]:
    return {
        "phase": phase.phase,
        "elapsed_s": phase.elapsed_s,
        **stats_summary(phase.stats, phase.elapsed_s),
        "verified": phase.verified,
        "verify_failures": phase.verify_failures,
        "concurrency": {
            "start": phase.start_concurrency,
            "final": phase.final_concurrency,
            "peak_in_flight": phase.peak_concurrency,
        },
        "failed": phase.failed,
        "nodes": {
            node: stats_summary(stats, phase.elapsed_s) for node, stats in by_node(parts).items()
        },
        "actors": [
            {
                "actor": part.actor,
                "node": part.node,
                "elapsed_s": part.result.elapsed_s,
                **stats_summary(part.result.stats, part.result.elapsed_s),
                "verified": part.result.verified,
                "concurrency": {
                    "start": part.result.start_concurrency,
                    "final": part.result.final_concurrency,
                    "samples": [asdict(s) for s in part.result.concurrency],
                },
            }
            for part in parts
        ],
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
        "cluster": {
            "executor": result.settings.executor,
            "nodes": result.nodes,
            "actors": result.actors,
            "driver_gather_cpu_s": result.gather_cpu_s,
            "gathers": result.gathers,
        },
        "phases": [phase_summary(p, result.breakdown.get(p.phase, [])) for p in result.phases],
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


def node_table(result: RunResult) -> Table:
    table = Table(title="by node", title_justify="left")
    for column in ("phase", "node", "actors", "objects", "GB/s", "p50 ms", "p99 ms", "errors"):
        table.add_column(column, justify="left" if column in ("phase", "node") else "right")
    for phase in result.phases:
        parts = result.breakdown.get(phase.phase, [])
        actors = {p.node: sum(1 for q in parts if q.node == p.node) for p in parts}
        for node, stats in sorted(by_node(parts).items()):
            lat = stats.latency.summary()
            table.add_row(
                phase.phase,
                node,
                str(actors[node]),
                str(stats.ops),
                f"{stats.bytes / phase.elapsed_s / 1e9:.3f}" if phase.elapsed_s else "0",
                _ms(lat["p50_s"]),
                _ms(lat["p99_s"]),
                str(stats.errors),
            )
    return table


def print_summary(result: RunResult, console: Console, result_path: Path | None) -> None:
    console.print(summary_table(result))
    if len(result.nodes) > 1 or result.actors > 1:
        console.print(node_table(result))
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

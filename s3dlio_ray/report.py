"""Result files and the summary a person reads in five seconds."""

from __future__ import annotations

import csv
import importlib.metadata
import json
import os
import platform
from collections.abc import Sequence
from dataclasses import asdict, fields
from importlib import resources
from pathlib import Path

from rich.console import Console
from rich.table import Table

from s3dlio_ray import __version__
from s3dlio_ray.cluster.aggregate import ActorPhaseResult, SeriesRow, by_node
from s3dlio_ray.engine import PhaseResult
from s3dlio_ray.runner import RunResult
from s3dlio_ray.stats import OpStats

SCHEMA_VERSION = 1


def result_schema() -> dict:
    """The JSON Schema the result files follow (shipped with the package)."""
    text = resources.files("s3dlio_ray").joinpath(f"schemas/result-v{SCHEMA_VERSION}.schema.json")
    return json.loads(text.read_text())


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
        "ended_by": phase.ended_by,
        **stats_summary(phase.stats, phase.elapsed_s),
        "verified": phase.verified,
        "verify_failures": phase.verify_failures,
        "concurrency": {
            "start": phase.start_concurrency,
            "final": phase.final_concurrency,
            "peak_in_flight": phase.peak_concurrency,
        },
        "failed": {str(key): reason for key, reason in phase.failed.items()},
        "by_op": {op: stats_summary(stats, phase.elapsed_s) for op, stats in phase.by_op.items()},
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


def result_dict(result: RunResult, configuration: str | None = None) -> dict[str, object]:
    """The JSON result: no credentials are ever part of Settings, so all of it may be written."""
    return {
        "schema_version": SCHEMA_VERSION,
        "tool": {"name": "s3dlio-ray", "version": __version__},
        "run_id": result.run_id,
        "ok": result.ok,
        "error": result.error,
        "workload": result.settings.name,
        "configuration": configuration,
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
            "cpus": os.cpu_count(),
            "versions": {
                name: _version(name) for name in ("s3dlio-ray", "ray", "botocore", "httpx")
            },
        },
        "cluster": {
            "executor": result.settings.executor,
            "nodes": result.nodes,
            "actors": result.actors,
            "node_cpus": result.node_cpus,
            "driver_gather_cpu_s": result.gather_cpu_s,
            "gathers": result.gathers,
        },
        "phases": [phase_summary(p, result.breakdown.get(p.phase, [])) for p in result.phases],
        "timeseries": [asdict(row) for row in result.series],
        "cleanup": asdict(result.cleanup) if result.cleanup else None,
    }


def _version(distribution: str) -> str | None:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def write_json(result: RunResult, path: str | Path, configuration: str | None = None) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(json.dumps(result_dict(result, configuration), indent=2) + "\n")
    return target


SERIES_COLUMNS = [f.name for f in fields(SeriesRow)]


def write_csv(doc: dict, path: str | Path) -> Path:
    """The time series: one row per second per node and operation."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=SERIES_COLUMNS)
        writer.writeheader()
        writer.writerows(doc["timeseries"])
    return target


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


SUMMARY_COLUMNS = (
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
)
NODE_COLUMNS = ("phase", "node", "actors", "objects", "GB/s", "p50 ms", "p99 ms", "errors")


def summary_rows(doc: dict) -> list[list[str]]:
    """Per phase: throughput, latency, errors, verification, concurrency (start -> final)."""
    rows = []
    for phase in doc["phases"]:
        lat = phase["latency"]
        verified = (
            f"{phase['verified']}/{phase['objects'] + phase['errors']}"
            if phase["phase"] == "get"
            else "-"
        )
        concurrency = phase["concurrency"]
        ended_by = phase.get("ended_by", "keys")
        rows.append(
            [
                phase["phase"] + ("" if ended_by == "keys" else f" ({ended_by})"),
                str(phase["objects"]),
                f"{phase['gbps']:.3f}",
                f"{phase['ops_per_s']:.1f}",
                _ms(lat["p50_s"]),
                _ms(lat["p90_s"]),
                _ms(lat["p99_s"]),
                _ms(lat["max_s"]),
                str(phase["errors"]),
                str(phase["retries"]),
                verified,
                f"{concurrency['start']}->{concurrency['final']}",
            ]
        )
    return rows


def node_rows(doc: dict) -> list[list[str]]:
    """Per phase and node: actors, objects, GB/s over the phase, latency, errors."""
    rows = []
    for phase in doc["phases"]:
        actors: dict[str, int] = {}
        for actor in phase["actors"]:
            actors[actor["node"]] = actors.get(actor["node"], 0) + 1
        for node, view in sorted(phase["nodes"].items()):
            rows.append(
                [
                    phase["phase"],
                    node,
                    str(actors.get(node, 0)),
                    str(view["objects"]),
                    f"{view['gbps']:.3f}",
                    _ms(view["latency"]["p50_s"]),
                    _ms(view["latency"]["p99_s"]),
                    str(view["errors"]),
                ]
            )
    return rows


def _rich_table(title: str, columns: Sequence[str], rows: list[list[str]]) -> Table:
    table = Table(title=title, title_justify="left")
    for column in columns:
        table.add_column(column, justify="left" if column in ("phase", "node") else "right")
    for row in rows:
        table.add_row(*row)
    return table


def summary_table(doc: dict) -> Table:
    title = (
        f"s3dlio-ray {doc['workload']}  run {doc['run_id']}  {doc['endpoint']}  "
        f"{doc['http_version']}  profile {doc['profile']}"
    )
    return _rich_table(title, SUMMARY_COLUMNS, summary_rows(doc))


def node_table(doc: dict) -> Table:
    return _rich_table("by node", NODE_COLUMNS, node_rows(doc))


def print_summary(doc: dict, console: Console, paths: Sequence[Path] = ()) -> None:
    """The five-second read: phases, nodes (when more than one actor), cleanup, failures."""
    console.print(summary_table(doc))
    cluster = doc["cluster"]
    if len(cluster["nodes"]) > 1 or cluster["actors"] > 1:
        console.print(node_table(doc))
    cleanup = doc["cleanup"]
    if cleanup is not None:
        removed = "bucket removed" if cleanup["bucket_removed"] else "bucket kept"
        console.print(
            f"cleanup: {cleanup['deleted']} objects deleted, {cleanup['aborted_uploads']} "
            f"uploads aborted, {removed}"
            + (f", {len(cleanup['failed'])} deletes FAILED" if cleanup["failed"] else "")
        )
    for phase in doc["phases"]:
        reasons = list(phase["failed"].values())
        for reason in reasons[:5]:
            console.print(f"[red]{phase['phase']} failed[/red] {reason}", highlight=False)
        if len(reasons) > 5:
            console.print(f"... and {len(reasons) - 5} more {phase['phase']} failures")
    for path in paths:
        console.print(f"result: {path}")
    console.print("[green]OK[/green]" if doc["ok"] else "[red]FAILED[/red]")

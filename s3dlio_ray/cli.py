"""The command line: `s3dlio-ray run WORKLOAD.yaml [overrides]`."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import json
import logging
import sys
import time
from pathlib import Path
from typing import Any

from rich.console import Console

from s3dlio_ray import __version__
from s3dlio_ray.compare import compare, compare_table, configuration_table
from s3dlio_ray.config import load_settings
from s3dlio_ray.embedded import EMBEDDED_CREDENTIALS, EmbeddedS3
from s3dlio_ray.errors import S3DlioRayError
from s3dlio_ray.html_report import render_html
from s3dlio_ray.launch import Progress, execute_configurations
from s3dlio_ray.oplog import oplog_pattern
from s3dlio_ray.report import SCHEMA_VERSION, print_summary, write_csv, write_json
from s3dlio_ray.runner import new_run_id

_OVERRIDES = {
    "endpoint": "S3 endpoint URL (default: AWS_ENDPOINT_URL, else an embedded moto server)",
    "bucket": "bucket to use (default: a new bucket, removed at the end)",
    "region": "signing region",
    "aws_profile": "AWS profile for credentials",
    "objects": "number of objects",
    "object_size": "object size (10MiB) or distribution (log-uniform:4KiB..64MiB, uniform:...)",
    "concurrency": "auto or a fixed number of requests in flight",
    "target_gbps": "target throughput: start concurrency from it and adapt toward it",
    "part_size_mb": "multipart part size in MiB (5..5120)",
    "profile": "auto, aws or high-performance",
    "seed": "seed for object content",
    "run_id": "run id (names the key prefix)",
    "phases": "comma-separated phases: put,get,mixed,sleep,cleanup",
    "duration_s": "run each PUT/GET/mixed phase for this many seconds (a mixed run's prefill "
    "PUT still writes its keys once)",
    "autoterm_window_s": "autoterm: the window over which throughput must be steady (default 10)",
    "autoterm_pct": "autoterm: how steady, in percent (default 7.5)",
    "rate_limit": "cap for the whole cluster: 500 ops/s, 1.5 GB/s, 200 MiB/s",
    "output": "path of the JSON result file",
    "op_log": "write an op-log per engine: PATH.tsv.zst -> PATH-HOST-PID.tsv.zst",
    "executor": "ray (actors on every node, the default) or local (one process, no Ray)",
    "ray_address": "Ray cluster to join (default: RAY_ADDRESS, a running one, or a new local one)",
    "actors_per_node": "transfer actors per node (default: the node's CPUs)",
    "metrics_port": "port of /metrics (default 9477; 0: any free port; off: none)",
    "metrics_host": "address /metrics binds (default 127.0.0.1)",
    "pushgateway_url": "Prometheus Pushgateway to push the final metrics to",
}


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="s3dlio-ray", description=__doc__)
    parser.add_argument("--version", action="version", version=f"s3dlio-ray {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a workload file")
    run.add_argument("workload", help="workload YAML file, e.g. configs/quick.yaml")
    for key, text in _OVERRIDES.items():
        flag = "--" + key.removesuffix("_s").replace("_", "-")
        run.add_argument(flag, dest=key, help=text)
    run.add_argument(
        "--http2",
        dest="http2",
        action="store_const",
        const=True,
        help="use HTTP/2 (non-AWS endpoints only)",
    )
    run.add_argument("--no-http2", dest="http2", action="store_const", const=False)
    run.add_argument(
        "--autoterm",
        dest="autoterm",
        action="store_const",
        const=True,
        help="end each phase once its throughput is steady (see --autoterm-window/-pct)",
    )
    run.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any workload key",
    )
    run.add_argument("--quiet", action="store_true", help="no live progress line")
    report = commands.add_parser(
        "report", help="re-render result files: summary and HTML (several: side by side too)"
    )
    report.add_argument(
        "results", nargs="+", metavar="RESULT", help="result JSON files written by `run`"
    )
    report.add_argument("--html", help="where to write the HTML report (default: beside it)")
    cmp = commands.add_parser("compare", help="compare two result files, B against A")
    cmp.add_argument("a", help="result JSON file A (the reference)")
    cmp.add_argument("b", help="result JSON file B")
    return parser


def _overrides(args: argparse.Namespace) -> dict[str, Any]:
    values = {
        k: getattr(args, k)
        for k in (*_OVERRIDES, "http2", "autoterm")
        if getattr(args, k) is not None
    }
    for item in args.extra:
        key, sep, value = item.partition("=")
        if not sep:
            raise S3DlioRayError(f"--set {item!r}: expected KEY=VALUE")
        values[key.strip()] = value
    return values


class _ProgressLine:
    """One status line updated in place on a terminal; a line every few seconds in a log."""

    def __init__(self, console: Console, total: int | None, log_every_s: float = 5.0) -> None:
        self._console = console
        self._total = total
        self._status = console.status("") if console.is_terminal else None
        self._log_every = log_every_s
        self._last_log = 0.0

    def __call__(self, progress: Progress) -> None:
        nodes = "  ".join(f"{node} {gbps:.2f}" for node, gbps in progress.node_gbps.items())
        text = (
            f"{progress.phase}: {progress.done}{'' if self._total is None else f'/{self._total}'} "
            f"objects  {progress.gbps:.2f} GB/s"
            f"  concurrency {progress.limit} ({progress.in_flight} in flight)"
            f"  errors {progress.errors}" + (f"  | GB/s by node: {nodes}" if nodes else "")
        )
        if self._status is not None:
            self._status.update(text)
            return
        now = time.monotonic()
        if now - self._last_log >= self._log_every:
            self._last_log = now
            self._console.print(text, highlight=False)

    def __enter__(self) -> _ProgressLine:
        if self._status is not None:
            self._status.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._status is not None:
            self._status.stop()


def _run(args: argparse.Namespace, console: Console) -> int:
    settings = load_settings(args.workload, _overrides(args))
    if settings.run_id is None:
        settings = dataclasses.replace(settings, run_id=new_run_id())
    if settings.op_log:
        # Actors write on their own nodes from their own working directories.
        settings = dataclasses.replace(settings, op_log=str(Path(settings.op_log).absolute()))
    with contextlib.ExitStack() as stack:
        endpoint, credentials = settings.endpoint, None
        if endpoint is None:
            embedded = stack.enter_context(EmbeddedS3())
            endpoint, credentials = embedded.url, EMBEDDED_CREDENTIALS
            console.print(f"embedded S3 endpoint (moto) at {endpoint}")
        total = None if settings.duration_s or settings.autoterm else settings.objects
        progress = stack.enter_context(_ProgressLine(console, total))
        results = asyncio.run(
            execute_configurations(
                settings,
                endpoint,
                credentials,
                on_progress=None if args.quiet else progress,
                on_metrics=lambda port: console.print(
                    f"metrics: http://{settings.metrics_host}:{port}/metrics"
                ),
            )
        )
    base = Path(settings.output or f"results/{settings.name}-{settings.run_id}.json")
    written = []
    for name, result in results:
        path = base if name is None else base.with_name(f"{base.stem}-{name}{base.suffix}")
        json_path = write_json(result, path, name)
        doc = json.loads(json_path.read_text())
        written.append((name, json_path, doc))
    named_docs = [(name or doc["workload"], doc) for name, _, doc in written]
    for name, json_path, doc in written:
        csv_path = write_csv(doc, json_path.with_suffix(".csv"))
        html_path = json_path.with_suffix(".html")
        html_path.write_text(render_html(doc, named_docs))
        if name is not None:
            console.rule(f"configuration {name}")
        print_summary(doc, console, [json_path, csv_path, html_path])
    if settings.op_log:
        console.print(f"op-log: one file per engine, {oplog_pattern(settings.op_log)}")
    if len(named_docs) > 1:
        console.print(configuration_table(named_docs))
    for _, result in results:
        if result.error:
            raise S3DlioRayError(result.error)
    return 0 if all(result.ok for _, result in results) else 1


def _load_result(path: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise S3DlioRayError(f"cannot read result file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise S3DlioRayError(f"{path} is not JSON (line {exc.lineno}): not a result file") from None
    if not isinstance(doc, dict) or doc.get("schema_version") != SCHEMA_VERSION:
        raise S3DlioRayError(
            f"{path} is not an s3dlio-ray result file of schema version {SCHEMA_VERSION}"
        )
    return doc


def _report(args: argparse.Namespace, console: Console) -> int:
    docs = [(path, _load_result(path)) for path in args.results]
    named = [(doc.get("configuration") or Path(path).stem, doc) for path, doc in docs]
    if args.html and len(docs) > 1:
        raise S3DlioRayError("--html names one file: give one result, or leave --html out")
    for path, doc in docs:
        html_path = Path(args.html or Path(path).with_suffix(".html"))
        html_path.write_text(render_html(doc, named))
        print_summary(doc, console, [html_path])
    if len(named) > 1:
        console.print(configuration_table(named))
    return 0 if all(doc["ok"] for _, doc in docs) else 1


def _compare(args: argparse.Namespace, console: Console) -> int:
    a, b = _load_result(args.a), _load_result(args.b)
    if not compare(a, b):
        raise S3DlioRayError(f"{args.a} and {args.b} share no phase to compare")
    console.print(compare_table(a, b))
    return 0


COMMANDS = {"run": _run, "report": _report, "compare": _compare}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="s3dlio-ray: %(levelname)s: %(message)s", level=logging.WARNING)
    args = _parser().parse_args(argv)
    console = Console()
    if not console.is_terminal:
        console = Console(width=max(console.width, 140))
    try:
        return COMMANDS[args.command](args, console)
    except S3DlioRayError as exc:
        print(f"s3dlio-ray: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt:
        print("s3dlio-ray: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())

"""Result files and the summary a person reads in five seconds, all from the run model."""

from __future__ import annotations

import csv
import json
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from rich.console import Console
from rich.measure import Measurement
from rich.table import Table

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.open_loop import BEHIND_S, rate_errors
from s3dlio_ray._internal.model.results import (
    MEANINGFUL_STEPS,
    READABLE_VERSIONS,
    SERIES_COLUMNS,
    PhaseResult,
    RunResult,
    Summary,
    TrainingResult,
)
from s3dlio_ray._internal.model.units import GB_PER_S, RateUnit
from s3dlio_ray._internal.model.vocabulary import EndedBy, Phase
from s3dlio_ray._internal.replay.plan import describe_skipped
from s3dlio_ray._internal.tuning.parts import MIB


def load_result(path: str | Path) -> RunResult:
    """A result file of any readable schema version, or one line saying why it is not one (bad
    input: the exit code says so)."""
    try:
        doc = json.loads(Path(path).read_text())
    except OSError as exc:
        raise ConfigError(f"cannot read result file {path}: {exc.strerror}") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path} is not JSON (line {exc.lineno}): not a result file") from None
    versions = " or ".join(str(v) for v in READABLE_VERSIONS)
    if not isinstance(doc, dict) or doc.get("schema_version") not in READABLE_VERSIONS:
        raise ConfigError(f"{path} is not an s3dlio-ray result file of schema version {versions}")
    try:
        return RunResult.from_dict(doc)
    except (KeyError, TypeError, ValueError) as exc:
        raise ConfigError(f"{path}: a damaged result file ({type(exc).__name__}: {exc})") from None


def write_json(result: RunResult, path: str | Path) -> Path:
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(result.to_json())
    return target


def write_csv(result: RunResult, path: str | Path) -> Path:
    """The time series: one row per second per node and operation."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    with target.open("w", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=SERIES_COLUMNS)
        writer.writeheader()
        writer.writerows(asdict(row) for row in result.timeseries)
    return target


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def summary_columns(unit: RateUnit = GB_PER_S) -> tuple[str, ...]:
    return (
        "phase",
        "seconds",
        "objects",
        "bytes",
        unit.name,
        "objects/s",
        "p50 ms",
        "p90 ms",
        "p99 ms",
        "max ms",
        "errors",
        "retries",
        "verified",
        "concurrency",
    )


def node_columns(unit: RateUnit = GB_PER_S) -> tuple[str, ...]:
    return (
        "phase",
        "node",
        "actors",
        "objects",
        unit.name,
        "objects/s",
        "p50 ms",
        "p99 ms",
        "errors",
    )


def endpoint_columns(unit: RateUnit = GB_PER_S) -> tuple[str, ...]:
    return (
        "phase",
        "endpoint",
        "objects",
        unit.name,
        "objects/s",
        "p50 ms",
        "p99 ms",
        "errors",
        "retries",
    )


CONCURRENCY_NOTE = "concurrency: the in-flight limit when the phase started -> when it ended"

NARROW_FIRST = (
    "max ms",
    "retries",
    "p90 ms",
    "actors",
    "verified",
    "concurrency",
    "p50 ms",
    "bytes",
    "seconds",
)
"""Columns left out first when a table is wider than the terminal (the JSON keeps them all)."""


def summary_rows(result: RunResult, unit: RateUnit = GB_PER_S) -> list[list[str]]:
    """Per phase: its time and bytes, throughput in `unit` and objects/s, latency, errors,
    verification, concurrency (start -> final); under a mixed phase, a row per operation."""
    rows = []
    for phase in result.phases:
        s = phase.summary
        reads = phase.phase in (Phase.GET, Phase.RESTORE, Phase.TRAIN, Phase.DOWNLOAD)
        verified = f"{phase.verified}/{s.objects + s.errors}" if reads else "-"
        if phase.phase == Phase.REPLAY and "GET" in phase.by_op:
            verified = f"{phase.verified}/{phase.by_op['GET'].objects}"
        name = phase.phase + ("" if phase.ended_by == EndedBy.KEYS else f" ({phase.ended_by})")
        rows.append(
            [
                name,
                f"{phase.elapsed_s:.1f}",
                *_summary_cells(s, unit),
                verified,
                f"{phase.start_concurrency}->{phase.final_concurrency}",
            ]
        )
        if phase.phase in (Phase.MIXED, Phase.REPLAY):
            for op, view in phase.by_op.items():
                rows.append([f"  {op}", "", *_summary_cells(view, unit), "", ""])
    return rows


def _summary_cells(s: Summary, unit: RateUnit) -> list[str]:
    return [
        str(s.objects),
        unit.size(s.bytes),
        unit.rate(s.gbps * 1e9),
        f"{s.ops_per_s:.1f}",
        _ms(s.latency.p50_s),
        _ms(s.latency.p90_s),
        _ms(s.latency.p99_s),
        _ms(s.latency.max_s),
        str(s.errors),
        str(s.retries),
    ]


def node_rows(result: RunResult, unit: RateUnit = GB_PER_S) -> list[list[str]]:
    """Per phase and node: actors, objects, throughput over the phase, latency, errors; under
    each node, a row per source address its actors left from (with bind_addresses)."""
    rows = []
    for phase in result.phases:
        for node, view in sorted(phase.nodes.items()):
            rows.append(_node_row(phase.phase, node, str(phase.actors_on(node)), view, unit))
            for where, address_view in phase.addresses.items():
                on, address = where.split(" ", 1)
                if on == node:
                    via = f"{node} via {address}"
                    rows.append(_node_row(phase.phase, via, "", address_view, unit))
    return rows


def _node_row(phase: str, node: str, actors: str, view: Summary, unit: RateUnit) -> list[str]:
    return [
        phase,
        node,
        actors,
        str(view.objects),
        unit.rate(view.gbps * 1e9),
        f"{view.ops_per_s:.1f}",
        _ms(view.latency.p50_s),
        _ms(view.latency.p99_s),
        str(view.errors),
    ]


def endpoint_rows(result: RunResult, unit: RateUnit = GB_PER_S) -> list[list[str]]:
    """Per phase and endpoint: what each address served."""
    return [
        [
            phase.phase,
            endpoint,
            str(view.objects),
            unit.rate(view.gbps * 1e9),
            f"{view.ops_per_s:.1f}",
            _ms(view.latency.p50_s),
            _ms(view.latency.p99_s),
            str(view.errors),
            str(view.retries),
        ]
        for phase in result.phases
        for endpoint, view in sorted(phase.endpoints.items())
    ]


EPOCH_COLUMNS = ("epoch", "samples", "samples/s", "GB/s", "waiting s", "AU %", "AU")
ACCELERATOR_COLUMNS = ("accelerator", "node", "samples", "samples/s", "waiting s", "AU %")
ACCELERATORS_LISTED = 16
"""Up to this many accelerators get a row each; beyond, the slowest ones do."""


def _verdict(passed: bool | None) -> str:
    return "-" if passed is None else ("pass" if passed else "FAIL")


def epoch_rows(training: TrainingResult) -> list[list[str]]:
    """Per epoch, for the whole cluster: samples, rates, time waiting for data, AU."""
    return [
        [
            str(e.epoch),
            str(e.samples),
            f"{e.samples_per_s:.1f}",
            f"{e.gbps:.3f}",
            f"{e.wait_s:.2f}",
            f"{e.au * 100:.1f}",
            _verdict(e.passed),
        ]
        for e in training.by_epoch()
    ]


def accelerator_rows(training: TrainingResult) -> list[list[str]]:
    """Per accelerator over all epochs, lowest AU first (where a slow node shows)."""
    accelerators = sorted(training.by_accelerator(), key=lambda a: a.au)
    return [
        [
            str(a.rank),
            a.node,
            str(a.samples),
            f"{a.samples / a.elapsed_s if a.elapsed_s > 0 else 0.0:.1f}",
            f"{a.wait_s:.2f}",
            f"{a.au * 100:.1f}",
        ]
        for a in accelerators[:ACCELERATORS_LISTED]
    ]


def training_line(training: TrainingResult) -> str:
    """One line: AU (mean and deviation over epochs) against its threshold, the shape of the
    run, what was dropped, memory; an AU of too few counted steps says so, and passes nothing."""
    threshold = (
        f" (threshold {training.au_threshold * 100:.0f}%: {_verdict(training.passed)})"
        if training.au_threshold is not None and training.au_meaningful
        else ""
    )
    epochs = len(training.by_epoch())
    meaning = (
        ""
        if training.au_meaningful
        else f" NOT MEANINGFUL: {training.counted_steps} counted steps per epoch (at least "
        f"{MEANINGFUL_STEPS} make an AU; more files, a smaller batch or fewer accelerators)"
    )
    line = (
        f"train: AU {training.au * 100:.1f}% (sd {training.au_std * 100:.1f}){threshold}{meaning} "
        f"over {epochs} epochs of {training.steps_per_epoch} steps (the first "
        f"{training.exclude_start_steps} and last {training.exclude_end_steps} not counted) x "
        f"{training.batch_size} samples on {training.accelerators} accelerators, "
        f"{training.computation_time_s:g} s compute per step"
    )
    if training.dropped_per_epoch:
        line += f"; {training.dropped_per_epoch} samples per epoch dropped (not a whole step)"
    peak = f"{training.buffered_peak / MIB:.1f} MiB"
    if training.memory_budget is not None:
        return f"{line}; buffered at most {peak} of {training.memory_budget / MIB:.0f} MiB"
    return f"{line}; buffered at most {peak} per actor"


SEARCH_COLUMNS = ("try", "per node", "accelerators", "AU %", "samples/s", "GB/s", "AU")


def _tries(result: RunResult) -> list[tuple[int, TrainingResult]]:
    """A search's train phases: (accelerators per node, what the try measured)."""
    nodes = max(len(result.cluster.nodes), 1)
    return [
        (p.training.accelerators // nodes, p.training)
        for p in result.phases
        if p.training is not None
    ]


def search_rows(result: RunResult) -> list[list[str]]:
    """find_max_accelerators: each try in the order it ran."""
    rows = []
    for number, (per_node, training) in enumerate(_tries(result), 1):
        epoch = training.by_epoch()
        rate = sum(e.samples_per_s for e in epoch) / len(epoch) if epoch else 0.0
        gbps = sum(e.gbps for e in epoch) / len(epoch) if epoch else 0.0
        rows.append(
            [
                str(number),
                str(per_node),
                str(training.accelerators),
                f"{training.au * 100:.1f}",
                f"{rate:.1f}",
                f"{gbps:.3f}",
                _verdict(training.passed),
            ]
        )
    return rows


def search_answer(result: RunResult) -> str:
    """The most accelerators per node whose AU held, in one line."""
    tries = _tries(result)
    if not tries:
        return "find-max-accelerators: no try ran"
    threshold = f"{(tries[0][1].au_threshold or 0) * 100:.0f}%"
    held = [n for n, t in tries if t.passed]
    failed = [n for n, t in tries if not t.passed]
    if not held:
        return f"find-max-accelerators: even 1 accelerator per node stays below AU {threshold}"
    best = max(held)
    if not [n for n in failed if n > best]:
        return (
            f"find-max-accelerators: at least {best} accelerators per node keep AU at "
            f"{threshold} or above; the dataset has samples for no more (write more files)"
        )
    return (
        f"find-max-accelerators: {best} accelerators per node keep AU at {threshold} or above; "
        f"{min(n for n in failed if n > best)} do not"
    )


def fitted_table(
    title: str,
    columns: Sequence[str],
    rows: list[list[str]],
    width: int | None = None,
    note: str | None = None,
) -> Table:
    """The table; with `width`, columns of NARROW_FIRST left out until it fits, so no number
    is ever cut short (the caption says what was left out)."""
    shown = list(range(len(columns)))
    table = _table(title, columns, rows, shown, note)
    for name in NARROW_FIRST:
        if width is None or _width(table) <= width:
            break
        if name in columns:
            shown.remove(columns.index(name))
            left = [c for i, c in enumerate(columns) if i not in shown]
            table = _table(title, columns, rows, shown, note, left)
    return table


def _table(
    title: str,
    columns: Sequence[str],
    rows: list[list[str]],
    shown: Sequence[int],
    note: str | None,
    left: Sequence[str] = (),
) -> Table:
    captions = [note] if note and "concurrency" in [columns[i] for i in shown] else []
    if left:
        captions.append(f"not shown at this width: {', '.join(left)} (wider terminal: all)")
    table = Table(
        title=title,
        title_justify="left",
        caption="; ".join(captions) or None,
        caption_justify="left",
    )
    for index in shown:
        column = columns[index]
        named = column in ("phase", "node", "endpoint")
        table.add_column(column, justify="left" if named else "right", no_wrap=True)
    for row in rows:
        table.add_row(*(row[i] for i in shown))
    return table


def _width(table: Table) -> int:
    """The columns the table needs to show every cell whole."""
    console = Console(width=10_000)
    return Measurement.get(console, console.options, table).maximum


def summary_table(result: RunResult, unit: RateUnit = GB_PER_S, width: int | None = None) -> Table:
    more = len(result.endpoints) - 1
    endpoint = result.endpoint + (f" (+{more} endpoints)" if more > 0 else "")
    title = (
        f"s3dlio-ray {result.workload}  run {result.run_id}  {endpoint}  "
        f"{result.http_version}  profile {result.profile}"
    )
    columns, rows = summary_columns(unit), summary_rows(result, unit)
    return fitted_table(title, columns, rows, width, CONCURRENCY_NOTE)


def print_summary(
    result: RunResult,
    console: Console,
    paths: Sequence[Path] = (),
    unit: RateUnit = GB_PER_S,
) -> None:
    """The five-second read: phases, nodes (when more than one actor), endpoints (when more
    than one), cleanup, failures; every table as wide as the console allows."""
    width = console.width
    if not result.phases:
        console.print(f"run {result.run_id}: no phase ran", highlight=False)
    else:
        console.print(summary_table(result, unit, width))
    if len(result.cluster.nodes) > 1 or result.cluster.actors > 1:
        rows = node_rows(result, unit)
        console.print(fitted_table("by node", node_columns(unit), rows, width))
    if any(len(p.endpoints) > 1 for p in result.phases):
        rows = endpoint_rows(result, unit)
        console.print(fitted_table("by endpoint", endpoint_columns(unit), rows, width))
    search = bool(result.settings.get("find_max_accelerators"))
    if search:
        title = "find-max-accelerators (one epoch per try)"
        console.print(fitted_table(title, SEARCH_COLUMNS, search_rows(result)))
        console.print(search_answer(result), highlight=False)
    for phase in result.phases:
        if phase.partial:
            console.print(
                f"{phase.phase}: partial figures: actors were lost while the run stopped (Ray's "
                "processes signalled with the command's); their last statistics count",
                style="yellow",
                highlight=False,
            )
        if phase.phase in (Phase.CHECKPOINT, Phase.RESTORE):
            console.print(
                f"{phase.phase}: {phase.elapsed_s:.2f} s for {phase.stats.bytes:,} bytes in "
                f"{phase.objects} shards ({phase.gbps:.3f} GB/s)",
                highlight=False,
            )
        if phase.training is not None and not search:
            console.print(fitted_table("train by epoch", EPOCH_COLUMNS, epoch_rows(phase.training)))
            if phase.training.accelerators > 1:
                title = "train by accelerator (lowest AU first)"
                rows = accelerator_rows(phase.training)
                console.print(fitted_table(title, ACCELERATOR_COLUMNS, rows))
            style = "red" if phase.training.passed is False else "default"
            console.print(training_line(phase.training), style=style, highlight=False)
        if set(phase.checks) - {"content"}:
            counts = ", ".join(f"{check} {count}" for check, count in phase.checks.items())
            console.print(f"{phase.phase} checked by: {counts}", highlight=False)
    for phase in result.phases:
        for line in replay_lines(phase):
            console.print(line, highlight=False, soft_wrap=True)
        loop_line = open_loop_line(phase)
        if loop_line is not None:
            title = f"{phase.phase}: service (sent to done) and response (due to done) times"
            console.print(fitted_table(title, OPEN_LOOP_COLUMNS, open_loop_rows(phase), width))
            console.print(loop_line, highlight=False, soft_wrap=True)
    for phase in result.phases:
        verdict_line = limit_line(phase, unit)
        if verdict_line is not None:
            console.print(verdict_line, highlight=False, soft_wrap=True)
    cleanup = result.cleanup
    if cleanup is not None:
        removed = "bucket removed" if cleanup.bucket_removed else "bucket kept"
        console.print(
            f"cleanup: {cleanup.deleted} objects deleted, {cleanup.aborted_uploads} "
            f"uploads aborted, {removed}"
            + (f", {len(cleanup.failed)} deletes FAILED" if cleanup.failed else "")
        )
    for phase in result.phases:
        reasons = list(phase.failed.values())
        for reason in reasons[:5]:
            console.print(
                f"[red]{phase.phase} failed[/red] {reason}", highlight=False, soft_wrap=True
            )
        if len(reasons) > 5:
            console.print(f"... and {len(reasons) - 5} more {phase.phase} failures")
    for path in paths:
        console.print(f"result: {path}")
    console.print(verdict_markup(result))


def replay_lines(phase: PhaseResult) -> list[str]:
    """What a replay read and left out, and what the store lacked (existing data)."""
    replay = phase.replay
    if replay is None:
        return []
    read = "; ".join(f"{name} ({fmt} op-log, {n} requests)" for name, fmt, n in replay.sources)
    lines = [f"replay of {read}"]
    planned = ", ".join(f"{op} {n}" for op, n in sorted(replay.planned.items()))
    made = f"; {replay.created} objects created first" if replay.created else ""
    lines.append(
        f"replay planned {sum(replay.planned.values())} requests ({planned}) over "
        f"{replay.span_s:.1f} s at {replay.speed:g}x the log's pace on {replay.objects} "
        f"objects{made}"
    )
    if replay.skipped:
        lines.append(f"replay left out {describe_skipped(replay.skipped)}")
    if replay.splits:
        lines.append(
            f"replay: {replay.splits} deletes of several keys were sent as one request per actor "
            "holding some of them (each key's operations stay on one actor)"
        )
    offsets = ", ".join(f"{node} {1e3 * s:+.1f} ms" for node, s in replay.clock_offsets.items())
    lines.append(
        f"replay clocks against the driver's: {offsets}; start set {replay.lead_s:.1f} s ahead"
    )
    if phase.missing:
        shown = ", ".join(phase.missing[:5])
        more = f" and {len(phase.missing) - 5} more" if len(phase.missing) > 5 else ""
        lines.append(
            f"replay: {len(phase.missing)} keys the log reads are not in the bucket: {shown}{more}"
        )
    return lines


def open_loop_line(phase: PhaseResult) -> str | None:
    """`REPLAY open loop: 2000 sent on schedule; lateness p50 .. p99 ..; 1.2% fell behind ...`"""
    loop = phase.open_loop
    if loop is None:
        return None
    late = loop.lateness
    line = (
        f"{str(phase.phase).upper()} open loop: {loop.sent} sent on schedule; lateness p50 "
        f"{_ms(late.percentile(0.5))} ms, p99 {_ms(late.percentile(0.99))} ms, max "
        f"{_ms(late.max_s)} ms; {100 * loop.behind_share:.1f}% fell behind (sent over "
        f"{BEHIND_S * 1e3:.0f} ms late)"
    )
    if loop.capped:
        line += f"; {loop.capped} waited for a free slot (the concurrency cap bit)"
    if phase.replay is not None:
        errors = rate_errors(phase.replay.scheduled_per_s, loop.sent_per_s)
        if errors:
            worst = max(errors, key=abs)
            line += (
                f"; sent per second vs the log's: worst {100 * worst:+.1f}% over {len(errors)} s"
            )
    return line


def open_loop_rows(phase: PhaseResult) -> list[list[str]]:
    """Per operation: sent, service and response time percentiles (ms)."""
    loop = phase.open_loop
    if loop is None:
        return []
    rows = []
    for op in sorted(loop.service):
        service, response = loop.service[op], loop.response[op]
        rows.append(
            [
                op,
                str(service.count),
                _ms(service.percentile(0.5)),
                _ms(service.percentile(0.99)),
                _ms(response.percentile(0.5)),
                _ms(response.percentile(0.99)),
                _ms(response.max_s),
            ]
        )
    return rows


OPEN_LOOP_COLUMNS = (
    "operation",
    "sent",
    "service p50 ms",
    "service p99 ms",
    "response p50 ms",
    "response p99 ms",
    "response max ms",
)


def limit_line(phase: PhaseResult, unit: RateUnit = GB_PER_S) -> str | None:
    """`GET 2.310 GB/s: limited by the server: ...`, and what the client spent on it; None for
    a phase with no verdict (a file from before schema 9)."""
    if phase.bottleneck is None:
        return None
    if phase.stats.bytes:
        rate = f"{unit.rate(phase.gbps * 1e9)} {unit.name}"
    else:
        rate = f"{phase.ops_per_s:.0f} objects/s"
    line = f"{str(phase.phase).upper()} {rate}: {phase.bottleneck.cluster.describe()}"
    cost = phase.client_cost
    if cost is not None and cost.us_per_request is not None:
        line += f"; {cost.describe()}"
    return line


def verdict(result: RunResult) -> str:
    """What the run's last line says: OK, FAILED (it went wrong), or FAIL (it went right and
    missed a criterion it was given, such as an AU threshold)."""
    if not result.ok:
        return "FAILED"
    return "FAIL" if result.passed is False else "OK"


def verdict_markup(result: RunResult) -> str:
    word = verdict(result)
    if word == "FAIL":
        return "[red]FAIL[/red]: the run missed its AU threshold (exit 3)"
    return "[green]OK[/green]" if word == "OK" else "[red]FAILED[/red]"

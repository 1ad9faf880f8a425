"""The command line: `s3dlio-ray run WORKLOAD.yaml [overrides]`, `cp`, `control`, `report`,
`compare`, `cleanup`.

A thin layer over the Python API: its flags come from the settings' own declarations, and it
adds what only a command line does (logging set-up, the progress line, the summary, exit codes).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import shlex
import signal
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import Field, fields
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console

from s3dlio_ray import _api as api
from s3dlio_ray._api import RunControl, RunReport
from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError, Terminated
from s3dlio_ray._internal.model.exit_codes import ExitCode
from s3dlio_ray._internal.model.keys import cleanup_command, run_prefix
from s3dlio_ray._internal.model.results import describe_changes
from s3dlio_ray._internal.model.units import RateUnit, rate_unit
from s3dlio_ray._internal.model.version import VERSION
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.run.outputs import in_store
from s3dlio_ray._internal.run.plan import choose_executor
from s3dlio_ray._internal.settings.values import Executor, parse_run_id

if TYPE_CHECKING:
    from s3dlio_ray._internal.live.telemetry import Progress
    from s3dlio_ray._internal.settings.schema import Settings

NO_FLAG = ("name", "mix", "configurations")
"""Keys set only in the workload file or with --set (they are lists or mappings)."""

CLEANUP_KEYS = ("endpoint", "bucket", "prefix", "region", "aws_profile", "ca_bundle")
"""What `cleanup` needs to find a run's journal, besides its id (and --insecure)."""


def flag_name(key: str) -> str:
    return "--" + key.removesuffix("_s").replace("_", "-")


def _add_setting_flags(
    run: argparse.ArgumentParser, only: tuple[str, ...] | None = None, leave: tuple[str, ...] = ()
) -> list[str]:
    """One flag per setting (of the groups `only` names, when given), grouped as the settings
    are; answers the keys they set."""
    from s3dlio_ray._internal.settings.schema import GROUP_KEYS, Settings

    declared = {field.name: field for field in fields(Settings)}
    keys = []
    for group, names in GROUP_KEYS.items():
        if only is not None and group not in only:
            continue
        flags = run.add_argument_group(f"{group} settings")
        for name in names:
            if name not in (*NO_FLAG, *leave):
                _add_flag(flags, declared[name])
                keys.append(name)
    return keys


def _add_flag(parser: argparse._ActionsContainer, field: Field[Any]) -> None:
    """The flag of one setting: --KEY/--no-KEY for a switch; repeatable where the setting is a
    list (each occurrence adds one)."""
    if field.type == "bool":
        action: Any = argparse.BooleanOptionalAction
    else:
        action = "append" if field.metadata["repeat"] else "store"
    metavar = None if field.type == "bool" else "VALUE"
    parser.add_argument(
        flag_name(field.name),
        dest=field.name,
        action=action,
        metavar=metavar,
        help=field.metadata["help"].replace("%", "%%"),
    )


COPY_GROUPS = ("copy", "tuning", "transport", "cluster", "metrics", "output")
"""The settings `cp` takes flags for (its source and destination are its arguments)."""
REPLAY_GROUPS = ("replay", "tuning", "transport", "cluster", "metrics", "output")
"""The settings `replay` takes flags for (its logs are its arguments)."""


def _add_set(command: argparse.ArgumentParser) -> None:
    command.add_argument(
        "--set",
        dest="extra",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="set any workload key; VALUE is YAML (--set 'mix={get: 90, put: 10}'), a dotted "
        "KEY sets inside a section",
    )


def _parser() -> tuple[argparse.ArgumentParser, list[str]]:
    parser = argparse.ArgumentParser(prog="s3dlio-ray", description=__doc__.splitlines()[0])
    parser.add_argument("--version", action="version", version=f"s3dlio-ray {VERSION}")
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run a workload file")
    run.add_argument("workload", help="workload YAML file, e.g. configs/quick.yaml")
    _add_set(run)
    run.add_argument("--quiet", action="store_true", help="no live progress line")
    keys = _add_setting_flags(run)
    cp = commands.add_parser(
        "cp",
        help="copy files between a local path and s3://BUCKET/PREFIX over the cluster",
    )
    cp.add_argument(
        "copy_from", metavar="SOURCE", help="a local file or folder, or s3://BUCKET/PREFIX"
    )
    cp.add_argument(
        "copy_to", metavar="DESTINATION", help="s3://BUCKET/PREFIX, or a local path ({node})"
    )
    cp.add_argument("--quiet", action="store_true", help="no live progress line")
    _add_set(cp)
    keys += [
        k for k in _add_setting_flags(cp, COPY_GROUPS, ("copy_from", "copy_to")) if k not in keys
    ]
    replay = commands.add_parser(
        "replay",
        help="issue op-logs again (this tool's, warp's, s3dlio's), each request at its recorded "
        "time, over the cluster",
    )
    replay.add_argument("replay_logs", nargs="+", metavar="LOG", help="an op-log file")
    replay.add_argument("--quiet", action="store_true", help="no live progress line")
    _add_set(replay)
    keys += [
        k for k in _add_setting_flags(replay, REPLAY_GROUPS, ("replay_logs",)) if k not in keys
    ]
    report = commands.add_parser(
        "report",
        help="re-render result files: summary and HTML (several: a new comparison page)",
    )
    report.add_argument(
        "results", nargs="+", metavar="RESULT", help="result JSON files written by `run`"
    )
    report.add_argument(
        "--units",
        default="GB/s",
        type=_units,
        help="rates in GB/s, MB/s (decimal) or GiB/s, MiB/s (binary)",
    )
    report.add_argument(
        "--html",
        help="where to write the page (default: beside the result; for several, "
        "compare-A-B.html beside the first)",
    )
    clean = commands.add_parser(
        "cleanup",
        help="remove what a run left behind (a killed run): its objects, uploads and journal",
    )
    clean.add_argument(
        "--run-id", required=True, type=_run_id, help="the run's id (in its result file's name)"
    )
    from s3dlio_ray._internal.settings.schema import Settings

    for field in fields(Settings):
        if field.name in CLEANUP_KEYS:
            _add_flag(clean, field)
    clean.add_argument("--insecure", action="store_const", const=True)
    control = commands.add_parser(
        "control",
        help="change a running run's targets, concurrency or rate limit, or pause / resume it",
    )
    control.add_argument(
        "--run-id",
        type=_run_id,
        help="the run to change (default: the one run going for this user here)",
    )
    from s3dlio_ray._internal.settings.changes import CHANGEABLE

    for field in fields(Settings):
        if field.name in CHANGEABLE:
            _add_flag(control, field)
    pause = control.add_mutually_exclusive_group()
    pause.add_argument(
        "--pause", dest="paused", action="store_const", const=True, help="start no new request"
    )
    pause.add_argument(
        "--resume", dest="paused", action="store_const", const=False, help="go on after --pause"
    )
    cmp = commands.add_parser(
        "compare",
        help="B against A: ratios, the interval of each difference and a verdict (faster, "
        "slower, within noise)",
    )
    cmp.add_argument("a", help="result JSON file A (the reference), or a -repeats.json set")
    cmp.add_argument("b", help="result JSON file B, or a -repeats.json set")
    _add_lab(commands)
    return parser, keys


def _add_lab(commands: Any) -> None:
    from s3dlio_ray._internal.lab.plan import DEFAULT_SUBNET, StoreKind

    lab = commands.add_parser(
        "lab",
        help="hosts with their own NICs, a Ray cluster across them and a store, on one Linux "
        "machine (root)",
    )
    lab.add_argument("--name", default="lab", help="which lab (several can be up at once)")
    steps = lab.add_subparsers(dest="lab_command", required=True)
    up = steps.add_parser("up", help="make the lab; prints `export` lines for its environment")
    up.add_argument("--hosts", type=int, default=3, help="client hosts, one raylet each")
    up.add_argument("--nics", type=int, default=1, help="NICs per host")
    up.add_argument("--nic-rate", default="1gbit", help="each NIC's rate each way, as tc says it")
    up.add_argument("--delay-ms", type=float, default=0.0, help="added at each gateway")
    up.add_argument("--store", default="moto", choices=[k.value for k in StoreKind])
    up.add_argument("--gateways", type=int, default=1, help="S3 gateways, each its own host")
    up.add_argument("--store-rate", help="each gateway's NIC rate (default: unshaped)")
    up.add_argument("--subnet", default=DEFAULT_SUBNET, help="the private subnet it uses")
    up.add_argument("--cpus", type=int, default=1, help="CPUs each raylet offers")
    up.add_argument(
        "--host-cpu", type=float, help="cores each host's processes may use (a cgroup quota)"
    )
    up.add_argument(
        "--null-size", default="4MiB", help="--store null: the bytes it serves for any GET"
    )
    run = steps.add_parser("exec", help="run a command in a host's namespace, lab environment set")
    run.add_argument("--host", type=int, default=1, help="which host (1: the Ray head's)")
    run.add_argument("lab_argv", nargs=argparse.REMAINDER, metavar="-- COMMAND")
    steps.add_parser("status", help="the map, and whether its parts answer")
    steps.add_parser("down", help="remove everything the lab made")


def _overrides(args: argparse.Namespace, keys: list[str]) -> dict[str, Any]:
    from s3dlio_ray._internal.settings.load import parse_assignment

    values = {k: getattr(args, k) for k in keys if getattr(args, k, None) is not None}
    for key, value in values.items():
        if value == "" or (isinstance(value, list) and "" in value):
            # An empty setting means "unset" in a file or variable; typed on the command line
            # it is nearly always a shell variable that was not set (--endpoint "$URL" would
            # quietly test the embedded endpoint).
            raise ConfigError(
                f"{flag_name(key)}: the value is empty (an unset shell variable?): give a "
                "value, or leave the flag out"
            )
    for item in args.extra:
        for key, value in parse_assignment(item).items():
            both = isinstance(value, dict) and isinstance(values.get(key), dict)
            values[key] = {**values[key], **value} if both else value
    return values


def _run_id(text: str) -> str:
    try:
        return parse_run_id(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"run id {text!r}: {exc}") from None


def _units(text: str) -> str:
    try:
        return rate_unit(text).name
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


class _ProgressLine:
    """One status line updated in place on a terminal; a line every few seconds in a log."""

    def __init__(
        self, console: Console, total: int | None, unit: RateUnit, log_every_s: float = 5.0
    ) -> None:
        self._console = console
        self._total = total
        self._unit = unit
        self._status = console.status("") if console.is_terminal else None
        self._log_every = log_every_s
        self._last_log = 0.0

    def __call__(self, progress: Progress) -> None:
        unit = self._unit
        nodes = "  ".join(
            f"{node} {unit.rate(gbps * 1e9)}" for node, gbps in progress.node_gbps.items()
        )
        total = self._total if progress.phase in (Phase.PUT, Phase.GET) else None
        done = f"{progress.done}{'' if total is None else f'/{total}'} objects"
        if progress.phase == Phase.TRAIN:
            epoch = "" if progress.epoch is None else f"epoch {progress.epoch}  "
            au = "" if progress.au is None else f"  AU {progress.au * 100:.1f}%"
            done = f"{epoch}{progress.done} samples{au}"
        paused = "PAUSED (s3dlio-ray control --resume goes on)  " if progress.paused else ""
        text = (
            f"{progress.phase}: {paused}{done}  {unit.rate(progress.gbps * 1e9)} {unit.name}"
            f"  concurrency {progress.limit} ({progress.in_flight} in flight)"
            f"  errors {progress.errors}"
            + (f"  limit: {progress.limit_kind}" if progress.limit_kind else "")
            + (f"  | {unit.name} by node: {nodes}" if nodes else "")
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


def _run(args: argparse.Namespace, keys: list[str], console: Console) -> int:

    settings = api.load_settings(args.workload, **_overrides(args, keys))
    return _execute(settings, args.quiet, console, args.argv)


def _cp(args: argparse.Namespace, keys: list[str], console: Console) -> int:
    from s3dlio_ray._internal.model.copy_plan import copy_workload

    workload = copy_workload(args.copy_from, args.copy_to)
    settings = api.load_settings(workload, **_overrides(args, keys))
    return _execute(settings, args.quiet, console)


def _replay(args: argparse.Namespace, keys: list[str], console: Console) -> int:
    from s3dlio_ray._internal.execution.phases.replay import replay_workload

    settings = api.load_settings(replay_workload(args.replay_logs), **_overrides(args, keys))
    return _execute(settings, args.quiet, console, args.argv)


def _execute(settings: Settings, quiet: bool, console: Console, argv: Sequence[str] = ()) -> int:
    """Run the settings' workload once, or `repeat` times and then the repeats' means.
    `argv`: the command line, for the hints that repeat it."""
    if settings.repeat == 1:
        return _execute_once(settings, quiet, console, argv)[0]
    return _repeat(settings, quiet, console)


def _repeat(settings: Settings, quiet: bool, console: Console) -> int:
    """Each repeat a whole run of its own (a given run id and output path end -rN); the first
    that does not end OK ends the series with its exit code. Then each phase's mean and
    interval, and the set file `compare` reads, beside the first repeat's files."""
    from s3dlio_ray._internal.reports.files import fitted_table
    from s3dlio_ray._internal.reports.repeats import (
        REPEAT_COLUMNS,
        load_runs,
        repeat_rows,
        write_repeats,
    )

    output = Path(settings.output) if settings.output and not in_store(settings.output) else None
    written = []
    for number in range(1, settings.repeat + 1):
        console.rule(f"repeat {number} of {settings.repeat}")
        one = settings.derive(
            run_id=f"{settings.run_id}-r{number}" if settings.run_id else None,
            output=(
                str(output.with_name(f"{output.stem}-r{number}.json"))
                if output
                else settings.output
            ),
        )
        code, paths = _execute_once(one, quiet, console)
        if code != ExitCode.OK:
            return code
        written.append(paths[0])
    target = (
        output.with_name(f"{output.stem}-repeats.json")
        if output
        else written[0].with_name(f"{written[0].stem}-repeats.json")
    )
    write_repeats(target, written)
    title = f"{settings.name}: {settings.repeat} repeats, mean ± 95% interval"
    console.print(
        fitted_table(title, REPEAT_COLUMNS, repeat_rows(load_runs(target)), console.width)
    )
    console.print(f"repeats: {target} (s3dlio-ray compare A B reads it)", highlight=False)
    return ExitCode.OK


def _execute_once(
    settings: Settings, quiet: bool, console: Console, argv: Sequence[str] = ()
) -> tuple[int, list[Path]]:
    """Run the settings' workload with the progress line, then its summary and files."""
    if settings.executor == Executor.AUTO:
        # Decided once here (whether a cluster runs is asked of the machine): the plan then
        # takes the answer as given.
        executor = choose_executor(settings)
        if executor == Executor.LOCAL:
            console.print(
                "a small job: run in this process, no Ray started (--executor ray for the cluster)",
                highlight=False,
            )
        settings = settings.derive(executor=executor)
    copying = {Phase.UPLOAD, Phase.DOWNLOAD} & set(settings.phase_names)
    total = None if settings.duration_s or settings.autoterm or copying else settings.objects
    unit = rate_unit(settings.units)
    with _ProgressLine(console, total, unit) as progress:
        hooks = api.Hooks(
            progress=None if quiet else progress,
            metrics=lambda port: console.print(
                f"metrics: http://{settings.metrics_host}:{port}/metrics"
            ),
            embedded=lambda url: console.print(f"embedded S3 endpoint (moto) at {url}"),
            control=lambda run_id: console.print(
                f"run {run_id}: s3dlio-ray control --run-id {run_id} --pause | --resume | "
                "--target-gbps N ...",
                highlight=False,
            ),
        )
        signals = _Signals()
        report = asyncio.run(api.run_async(settings, hooks=hooks, control=signals))
    with signals.writing():
        return _finish(report, signals, console, unit, argv)


def _finish(
    report: RunReport, signals: _Signals, console: Console, unit: RateUnit, argv: Sequence[str]
) -> tuple[int, list[Path]]:
    """A run's files, summary and last lines, and the exit code."""
    from s3dlio_ray._internal.reports.compare import configuration_table
    from s3dlio_ray._internal.reports.files import print_summary
    from s3dlio_ray._internal.storage.oplog import oplog_pattern

    try:
        paths = report.write()
    except OSError as exc:
        for result in report.results:
            print_summary(result, console, (), unit)
        raise S3DlioRayError(
            f"the result files could not be written under {report.paths[0].parent}: "
            f"{exc.strerror or exc}: free space there, raise the file-size limit (ulimit -f), "
            "or give --output elsewhere; the summary above holds the run's figures"
        ) from None
    for wanted, json_path in zip(report.paths, paths[::3], strict=True):
        if json_path != wanted:
            console.print(
                f"{wanted} is an earlier result's (its run id was used again): this run's "
                f"files are {json_path.with_suffix('.*')}",
                highlight=False,
                soft_wrap=True,
            )
    for index, result in enumerate(report.results):
        if result.configuration is not None:
            console.rule(f"configuration {result.configuration}")
        print_summary(result, console, paths[3 * index : 3 * index + 3], unit)
    for url in report.store(paths):
        console.print(f"stored: {url}", highlight=False)
    if report.settings.op_log:
        console.print(f"op-log: one file per engine, {oplog_pattern(report.settings.op_log)}")
    if len(report.results) > 1:
        console.print(configuration_table(report.named()))
    left = _left_behind(report)
    kept = _dataset_kept(report, argv)
    if kept:
        console.print(kept, highlight=False, soft_wrap=True)
    if signals.received is not None:
        name = signal.Signals(signals.received).name
        cleanup = report.result.cleanup
        done = left or (f"cleanup: {cleanup.deleted} objects deleted" if cleanup else "no cleanup")
        print(f"s3dlio-ray: interrupted by {name}: result in {paths[0]}; {done}", file=sys.stderr)
        return ExitCode.stopped_by(signals.received), paths
    if left:
        console.print(left, highlight=False, soft_wrap=True)
    if signals.late is not None:
        name = signal.Signals(signals.late).name
        print(f"s3dlio-ray: {name} came after the run ended: result in {paths[0]}", file=sys.stderr)
        return ExitCode.stopped_by(signals.late), paths
    if report.error:
        raise S3DlioRayError(report.error)
    if not report.ok:
        return ExitCode.RUN_ERROR, paths
    return ExitCode.CRITERION_FAILED if report.passed is False else ExitCode.OK, paths


WRITES = (Phase.PUT, Phase.DATAGEN, Phase.CHECKPOINT, Phase.UPLOAD, Phase.MIXED)


def _wrote(report: RunReport) -> bool:
    """Whether the run may have left anything in the store: a phase that writes began (its
    journal went first, uploads may be half done), or it created the bucket."""
    result = report.result
    return result.bucket_created or any(p.phase in WRITES for p in result.phases)


def _left_behind(report: RunReport) -> str | None:
    """When a run meant to clean up but did not (skipped, or it failed) and left something in
    a store that outlives it: what is left where, and the command that removes it."""
    result, settings = report.result, report.settings
    if Phase.CLEANUP not in settings.phase_names or (result.cleanup and not result.cleanup.failed):
        return None
    if settings.endpoint is None or not _wrote(report):
        return None
    return (
        f"not cleaned up: what the run wrote is left in s3://{result.bucket}/"
        f"{run_prefix(settings.prefix, result.run_id)}, remove it with: {_cleanup_command(report)}"
    )


def _dataset_kept(report: RunReport, argv: Sequence[str]) -> str | None:
    """A datagen without a cleanup keeps its dataset for later train runs: where, the command
    that trains on it (this one, with the train phase only, on this run's keys; `--set` last,
    as it wins over flags and earlier `--set`s; its files beside this run's, not over them) and
    the one that removes it."""
    result, settings = report.result, report.settings
    embedded = settings.endpoint is None
    if result.phase(Phase.DATAGEN) is None or Phase.CLEANUP in settings.phase_names or embedded:
        return None
    train = shlex.join(
        [
            "s3dlio-ray",
            *_without(argv, ("--output", "--repeat")),
            "--set",
            "phases=train",
            "--set",
            f"run_id={result.run_id}",
            "--set",
            f"bucket={result.bucket}",
            *(
                ["--output", str(Path(settings.output).with_suffix("")) + "-train.json"]
                if settings.output
                else []
            ),
        ]
    )
    return (
        f"dataset kept in s3://{result.bucket}/{run_prefix(settings.prefix, result.run_id)}: "
        f"train on it with: {train}; remove it with: {_cleanup_command(report)}"
    )


def _without(argv: Sequence[str], flags: Sequence[str]) -> list[str]:
    """The command line less `flags` (with their values): what a hint repeats of it."""
    kept: list[str] = []
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word in flags:
            skip = True
        elif not word.startswith(tuple(f"{flag}=" for flag in flags)):
            kept.append(word)
    return kept


def _cleanup_command(report: RunReport) -> str:
    result, settings = report.result, report.settings
    extra = [
        word
        for key in ("region", "aws_profile", "ca_bundle")
        if getattr(settings, key) is not None
        for word in (flag_name(key), str(getattr(settings, key)))
    ]
    if settings.insecure:
        extra.append("--insecure")
    endpoints = result.endpoints if settings.endpoint else ()
    return cleanup_command(result.run_id, result.bucket, settings.prefix, endpoints, extra)


_terminated_early = False
"""Whether SIGTERM came before the run took signals over (Ray may turn the Terminated raised in
one of its calls into a plain KeyboardInterrupt)."""


def _terminated(signum: int, frame: object) -> None:
    global _terminated_early
    _terminated_early = True
    raise Terminated


STOPS = (signal.SIGINT, signal.SIGTERM)


class _Signals(RunControl):
    """The command line's stop: the first SIGINT or SIGTERM stops the run in order (requests in
    flight get a few seconds, then cleanup); a second one skips cleanup. Installed once the run
    has started (so after Ray's own handlers). After the run (`writing`), signals are noted
    and its files and summary written (a second or third in a hurry would otherwise leave a
    half-written file, or none)."""

    def __init__(self) -> None:
        super().__init__()
        self.received: int | None = None
        self.late: int | None = None
        """A signal that came after the run ended."""

    @contextlib.contextmanager
    def writing(self) -> Iterator[None]:
        """While the run's files and summary are written (the run's loop took its handlers
        with it)."""
        before = {signum: signal.signal(signum, self._late) for signum in STOPS}
        try:
            yield
        finally:
            for signum, handler in before.items():
                signal.signal(signum, handler)

    def _late(self, signum: int, frame: object) -> None:
        if self.received is None and self.late is None:
            self.late = signum
        name = signal.Signals(signum).name
        print(f"s3dlio-ray: {name}: the run is over; writing its result", file=sys.stderr)

    def attach(self, listener: Callable[[bool], None]) -> None:
        super().attach(listener)
        loop = asyncio.get_running_loop()
        for signum in STOPS:
            loop.add_signal_handler(signum, self._signalled, signum)

    def _signalled(self, signum: int) -> None:
        name = signal.Signals(signum).name
        if self.received is None:
            self.received = signum
            print(
                f"s3dlio-ray: {name}: stopping: requests in flight get a few seconds, then "
                f"cleanup ({name} again skips it)",
                file=sys.stderr,
            )
            self.stop()
        else:
            print(f"s3dlio-ray: {name} again: skipping cleanup", file=sys.stderr)
            self.stop(skip_cleanup=True)


def _report(args: argparse.Namespace, keys: list[str], console: Console) -> int:
    from s3dlio_ray._internal.reports.compare import configuration_table
    from s3dlio_ray._internal.reports.files import print_summary
    from s3dlio_ray._internal.reports.pages import named_results, report_page, write_report

    page = report_page(args.results, args.html)
    named = named_results(args.results)
    write_report(named, page)
    unit = rate_unit(args.units)
    for _, result in named:
        print_summary(result, console, [page] if len(named) == 1 else [], unit)
    if len(named) > 1:
        console.print(configuration_table(named))
        console.print(f"comparison: {page}", highlight=False)
    return ExitCode.OK if all(result.ok for _, result in named) else ExitCode.RUN_ERROR


def _compare(args: argparse.Namespace, keys: list[str], console: Console) -> int:
    from s3dlio_ray._internal.reports.compare import compare, compare_notes, compare_table
    from s3dlio_ray._internal.reports.repeats import load_runs

    a, b = load_runs(args.a), load_runs(args.b)
    differences = compare(a, b)
    if not differences:
        raise ConfigError(f"{args.a} and {args.b} share no phase to compare")
    console.print(compare_table(differences, a, b))
    for note in compare_notes(differences, a, b):
        console.print(note, highlight=False, style="yellow" if note.startswith("warning") else "")
    return ExitCode.OK


def _cleanup(args: argparse.Namespace, keys: list[str], console: Console) -> int:

    given = (*CLEANUP_KEYS, "insecure")
    overrides = {k: getattr(args, k) for k in given if getattr(args, k) is not None}
    result = api.cleanup_run(args.run_id, **overrides)
    removed = "bucket removed" if result.bucket_removed else "bucket kept"
    console.print(
        f"cleanup of run {args.run_id}: {result.deleted} objects deleted, "
        f"{result.aborted_uploads} uploads aborted, {removed}"
        + (f", {len(result.failed)} deletes FAILED" if result.failed else "")
    )
    return ExitCode.RUN_ERROR if result.failed else ExitCode.OK


def _control(args: argparse.Namespace, keys: list[str], console: Console) -> int:
    from s3dlio_ray._internal.live.control_channel import find, send
    from s3dlio_ray._internal.settings.changes import CHANGEABLE

    request = {k: getattr(args, k) for k in CHANGEABLE if getattr(args, k) is not None}
    if args.paused is not None:
        request["paused"] = args.paused
    registration = find(args.run_id)
    answer = send(registration, request)
    changed = describe_changes(answer["changed"]) or "nothing changed"
    console.print(
        f"run {registration.run_id}: {changed} (change {answer['version']}; every actor has it "
        "within a second)",
        highlight=False,
    )
    return ExitCode.OK


def _lab(args: argparse.Namespace, keys: list[str], console: Console) -> int:
    from s3dlio_ray._internal.lab import command
    from s3dlio_ray._internal.lab.plan import Lab, StoreKind

    if args.lab_command == "up":
        lab = Lab(
            name=args.name,
            hosts=args.hosts,
            nics=args.nics,
            nic_rate=args.nic_rate,
            store=StoreKind(args.store),
            gateways=args.gateways,
            store_rate=args.store_rate,
            delay_ms=args.delay_ms,
            subnet=args.subnet,
            cpus=args.cpus,
            null_size=args.null_size,
            host_cpu=args.host_cpu,
        )
        record = command.up(lab)
        print(command.describe(lab), file=sys.stderr)
        print(command.exports(record), end="")
    elif args.lab_command == "exec":
        argv = args.lab_argv[1:] if args.lab_argv[:1] == ["--"] else args.lab_argv
        command.exec_in(args.name, args.host, argv)
    elif args.lab_command == "status":
        healthy, text = command.status(args.name)
        print(text)
        return ExitCode.OK if healthy else ExitCode.RUN_ERROR
    else:
        print(command.down(args.name), file=sys.stderr)
    return ExitCode.OK


COMMANDS = {
    "run": _run,
    "cp": _cp,
    "replay": _replay,
    "control": _control,
    "report": _report,
    "compare": _compare,
    "cleanup": _cleanup,
    "lab": _lab,
}


def main(argv: list[str] | None = None) -> int:
    logging.basicConfig(format="s3dlio-ray: %(levelname)s: %(message)s", level=logging.WARNING)
    notes = logging.StreamHandler()
    notes.setFormatter(logging.Formatter("s3dlio-ray: %(message)s"))
    logging.getLogger("s3dlio_ray.notes").addHandler(notes)
    logging.getLogger("s3dlio_ray.notes").setLevel(logging.INFO)
    logging.getLogger("s3dlio_ray.notes").propagate = False
    signal.signal(signal.SIGTERM, _terminated)
    parser, keys = _parser()
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    console = Console()
    if not console.is_terminal and "COLUMNS" not in os.environ:
        console = Console(width=max(console.width, 140))
    try:
        return COMMANDS[args.command](args, keys, console)
    except S3DlioRayError as exc:
        print(f"s3dlio-ray: error: {exc}", file=sys.stderr)
        return exc.exit_code
    except KeyboardInterrupt as stopped:
        if _terminated_early or isinstance(stopped, Terminated):
            print("s3dlio-ray: terminated before the run started", file=sys.stderr)
            return ExitCode.SIGTERM
        print("s3dlio-ray: interrupted before the run started", file=sys.stderr)
        return ExitCode.SIGINT


if __name__ == "__main__":
    sys.exit(main())

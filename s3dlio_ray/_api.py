"""The Python API: run a workload and get its typed result, from a script, a notebook, a CI job
or a Ray program; the command line is a thin layer over it.

As a library it configures no logging and installs no signal handler. In a process that already
called `ray.init()` a run joins that cluster and sizes its actors from the CPUs still free there.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from s3dlio_ray._internal.execution.build import build_client
from s3dlio_ray._internal.execution.phases.replay import replay_workload
from s3dlio_ray._internal.live.control_channel import Changer
from s3dlio_ray._internal.live.executor import ProgressHook
from s3dlio_ray._internal.model.copy_plan import copy_workload
from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
from s3dlio_ray._internal.model.keys import run_prefix
from s3dlio_ray._internal.model.results import CleanupResult, PhaseResult, RunResult
from s3dlio_ray._internal.reports.compare import Difference, Named, Runs
from s3dlio_ray._internal.reports.compare import compare as compare_results
from s3dlio_ray._internal.reports.files import write_csv, write_json
from s3dlio_ray._internal.reports.pages import (
    named_results,
    report_page,
    write_pages,
    write_report,
)
from s3dlio_ray._internal.reports.repeats import load_runs
from s3dlio_ray._internal.run.launch import MetricsHook, execute_plan
from s3dlio_ray._internal.run.outputs import in_store, store_results
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings as _load_settings
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.storage.embedded import EMBEDDED_CREDENTIALS, EmbeddedS3
from s3dlio_ray._internal.storage.journal import cleanup, journal_bounds, read_journal

Workload = str | Path | Mapping[str, Any] | Settings
"""A workload file's path, its content as a mapping, or Settings already loaded."""


def load_settings(
    workload: str | Path | Mapping[str, Any] | None = None, /, **overrides: Any
) -> Settings:
    """Settings from a workload (file or mapping), the S3DLIO_* environment and `overrides`
    (YAML key names; a nested section as a dict), with the command line's precedence and its
    one-line errors (ConfigError)."""
    return _load_settings(workload, overrides)


def _settings(workload: Workload, overrides: Mapping[str, Any]) -> Settings:
    if not isinstance(workload, Settings):
        return _load_settings(workload, overrides)
    # Settings were loaded with the environment already: apply only the overrides.
    return _load_settings(workload.to_dict(), overrides, environ={}) if overrides else workload


@dataclass(frozen=True, repr=False)
class RunReport:
    """What a run measured: one result, or one per configuration of the workload."""

    settings: Settings
    results: tuple[RunResult, ...]

    def __repr__(self) -> str:
        results = ", ".join(repr(result) for result in self.results)
        passed = "" if self.passed is None else f", passed={self.passed}"
        return f"RunReport(ok={self.ok}{passed}, results=[{results}])"

    @property
    def result(self) -> RunResult:
        """The result (of the last configuration, when the workload has several)."""
        return self.results[-1]

    @property
    def phases(self) -> tuple[PhaseResult, ...]:
        return self.result.phases

    @property
    def ok(self) -> bool:
        """Every object written and read back intact, in every configuration."""
        return all(r.ok for r in self.results)

    @property
    def passed(self) -> bool | None:
        """Every configuration met the criteria it was given (an AU threshold); None with none
        judged."""
        verdicts = [r.passed for r in self.results if r.passed is not None]
        return all(verdicts) if verdicts else None

    @property
    def error(self) -> str | None:
        return next((r.error for r in self.results if r.error), None)

    def named(self) -> Named:
        """Each result with the name a comparison gives it: its configuration, else the
        workload."""
        return [(r.configuration or r.workload, r) for r in self.results]

    @property
    def paths(self) -> list[Path]:
        """Where write() puts each result's JSON when given no place: the `output` setting,
        else results/WORKLOAD-RUNID.json (a configuration's name joins the stem)."""
        return self._json_paths(None)

    def _json_paths(self, base: str | Path | None) -> list[Path]:
        settings = self.settings
        name = f"{settings.name}-{self.result.run_id}.json"
        if base is None:
            local = settings.output if not in_store(settings.output) else None
            base = Path(local or Path("results") / name)
        base = Path(base)
        if base.suffix != ".json":
            base = base / name
        return [
            base
            if r.configuration is None
            else base.with_name(f"{base.stem}-{r.configuration}{base.suffix}")
            for r in self.results
        ]

    def write(self, base: str | Path | None = None) -> list[Path]:
        """Write each result as JSON, CSV (time series) and HTML side by side; answer every
        path written, in that order per result. Files already there (a run id used again) are
        never overwritten: the new ones take the first free `-2`, `-3`... suffix. (An `output`
        of s3://: written under results/ here, then `store()` puts them there.)"""
        written = []
        for result, wanted in zip(self.results, self._json_paths(base), strict=True):
            json_path = _unused(wanted)
            write_json(result, json_path)
            csv_path = write_csv(result, json_path.with_suffix(".csv"))
            written += [json_path, csv_path, json_path.with_suffix(".html")]
        write_pages(self.named(), written[2::3])
        return written

    def store(self, written: Sequence[Path]) -> list[str]:
        """Put the files write() answered in the store `output: s3://BUCKET/PREFIX/` names;
        answers their URLs (none when `output` is local)."""
        output = self.settings.output
        if not in_store(output):
            return []
        assert output is not None
        return _blocking(store_results(self.settings, written, output))


def _unused(wanted: Path) -> Path:
    """`wanted`, or the first NAME-N.json whose JSON, CSV and HTML are all free."""
    path, number = wanted, 1
    while any(path.with_suffix(ext).exists() for ext in (".json", ".csv", ".html")):
        number += 1
        path = wanted.with_name(f"{wanted.stem}-{number}{wanted.suffix}")
    return path


@dataclass(frozen=True)
class Hooks:
    """What a watching program is told while a run goes: progress every second, the port
    /metrics is served on, the embedded endpoint's URL when one is started, the run's id once
    it takes changes (`s3dlio-ray control --run-id ID`)."""

    progress: ProgressHook | None = None
    metrics: MetricsHook | None = None
    embedded: Callable[[str], None] | None = None
    control: Callable[[str], None] | None = None


async def run_async(
    workload: Workload,
    /,
    *,
    hooks: Hooks = Hooks(),
    control: RunControl | None = None,
    **overrides: Any,
) -> RunReport:
    """run() for code already in an event loop; `control` stops it early."""
    return await _run(_settings(workload, overrides), hooks, control)


async def _run(settings: Settings, hooks: Hooks, control: RunControl | None) -> RunReport:
    with contextlib.ExitStack() as stack:
        if settings.endpoint is None:
            embedded = stack.enter_context(EmbeddedS3())
            plan = plan_run(settings, (embedded.url,), EMBEDDED_CREDENTIALS, embedded=True)
            if hooks.embedded is not None:
                hooks.embedded(embedded.url)
        else:
            plan = plan_run(settings)
        results = await execute_plan(plan, hooks.progress, hooks.metrics, control, hooks.control)
    return RunReport(plan.settings, tuple(results))


def copy(source: str, destination: str, /, **overrides: Any) -> RunReport:
    """Copy files between a local path and s3://BUCKET/PREFIX over the cluster, as `s3dlio-ray
    cp` does: `recursive`, `include` / `exclude`, `per_node`, `sync`, `clobber` and every
    run setting are keyword overrides. Its report is a run's (result files, summary)."""
    return run(copy_workload(source, destination), **overrides)


def replay(*logs: str | Path, **overrides: Any) -> RunReport:
    """Issue op-logs again (this tool's, warp's, s3dlio's), each request at its recorded time
    over the cluster, as `s3dlio-ray replay` does: `speed`, `existing`, `rewrite` and every
    run setting are keyword overrides. Its report is a run's, with a `replay` phase."""
    return run(replay_workload([str(log) for log in logs]), **overrides)


def run(workload: Workload, /, **overrides: Any) -> RunReport:
    """Run a workload to the end (its cleanup included) and answer what it measured.

    `workload`: a YAML file, a mapping of the same keys, or Settings; `overrides`: YAML keys,
    which win over the file and the S3DLIO_* environment. With no endpoint the run starts an
    embedded S3 endpoint on loopback (a single-node cluster only). A bad setting raises
    ConfigError, an endpoint or cluster that cannot be used S3DlioRayError, each one line.
    Called from a thread whose event loop is running (a notebook), it runs in a thread of its
    own.
    """
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(run_async(workload, **overrides))
    return start(workload, **overrides).wait()


T = TypeVar("T")


def _blocking(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end from synchronous code: on a new event loop, or, when this thread's
    loop is already running (a notebook), on one in a thread of its own."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        return asyncio.run(work)
    answer: list[T] = []
    error: list[BaseException] = []

    def main() -> None:
        try:
            answer.append(asyncio.run(work))
        except BaseException as exc:
            error.append(exc)

    thread = threading.Thread(target=main, name="s3dlio-ray-call", daemon=True)
    thread.start()
    thread.join()
    if error:
        raise error[0]
    return answer[0]


class RunControl:
    """Stops a run from another thread or a signal handler: the running phase stops starting
    operations (what is in flight gets a few seconds), no further phase starts, and cleanup still
    runs unless `skip_cleanup` (a second, impatient stop). Changes settings of the running run
    from another thread (`change`)."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._listeners: list[Callable[[bool], None]] = []
        self.stopped = False
        self.skip_cleanup = False
        self._changer: Changer | None = None

    def attach(self, listener: Callable[[bool], None]) -> None:
        """`listener(skip_cleanup)` is called on the run's event loop when a stop is asked for
        (at once if it was already)."""
        self._loop = asyncio.get_running_loop()
        self._listeners.append(listener)
        if self.stopped:
            listener(self.skip_cleanup)

    def attach_changes(self, changer: Changer | None) -> None:
        """Changes go to `changer` from now on (None: the run takes none now)."""
        self._changer = changer

    def change(self, **changes: Any) -> dict[str, Any]:
        """Change settings of the running run (see RunHandle.control)."""
        changer = self._changer
        if changer is None:
            raise S3DlioRayError(
                "control: the run takes changes once it has started, until it ends: "
                "try again when it runs"
            )
        return changer.change(changes)

    def stop(self, skip_cleanup: bool = False) -> None:
        self.stopped = True
        self.skip_cleanup = self.skip_cleanup or skip_cleanup
        if self._loop is not None:
            for listener in self._listeners:
                self._loop.call_soon_threadsafe(listener, self.skip_cleanup)


class RunHandle:
    """A run going on in a thread of its own: wait for it, or stop it early."""

    def __init__(self, settings: Settings, hooks: Hooks = Hooks()) -> None:
        self.settings = settings
        self._control = RunControl()
        self._report: RunReport | None = None
        self._error: BaseException | None = None
        self._thread = threading.Thread(
            target=self._main, args=(hooks,), name="s3dlio-ray-run", daemon=True
        )
        self._thread.start()

    def _main(self, hooks: Hooks) -> None:
        try:
            self._report = asyncio.run(_run(self.settings, hooks, self._control))
        except BaseException as exc:
            self._error = exc

    @property
    def done(self) -> bool:
        return not self._thread.is_alive()

    def stop(self) -> None:
        """Stop the run early; its result says `interrupted`. Returns at once: wait() after."""
        self._control.stop()

    def control(self, **changes: Any) -> dict[str, Any]:
        """Change the running run's settings: `target_gbps`, `cluster_target_gbps`,
        `concurrency` ("auto" or a number), `min_concurrency`, `max_concurrency`, `rate_limit`
        ("1 GB/s", "500 ops/s", None), and `paused` (True / False); every actor has them within
        a second. Answers what changed; ConfigError, and nothing changed, for a change the run
        cannot take."""
        return self._control.change(**changes)

    def wait(self, timeout_s: float | None = None) -> RunReport:
        """The report once the run is over; raises what the run raised. A KeyboardInterrupt
        while waiting stops the run, waits for its cleanup, and is raised again."""
        try:
            self._thread.join(timeout_s)
        except KeyboardInterrupt:
            self.stop()
            self._thread.join()
            raise
        if self._thread.is_alive():
            raise TimeoutError(f"the run is still going after {timeout_s:g} s")
        if self._error is not None:
            raise self._error
        assert self._report is not None
        return self._report


def start(workload: Workload, /, *, hooks: Hooks = Hooks(), **overrides: Any) -> RunHandle:
    """Start a run in the background (its own thread and event loop) and answer its handle."""
    return RunHandle(_settings(workload, overrides), hooks)


async def cleanup_async(run_id: str, /, **overrides: Any) -> CleanupResult:
    """cleanup() for code already in an event loop."""
    settings = _load_settings(None, {**overrides, "run_id": run_id})
    if settings.endpoint is None:
        raise ConfigError(
            "cleanup: give the endpoint the run wrote to (--endpoint URL); an embedded "
            "endpoint keeps nothing after its run"
        )
    plan = plan_run(settings)
    bucket = plan.bucket
    client = build_client(settings, plan.access)
    try:
        journal = await read_journal(client, bucket, settings.prefix, run_id)
        if journal is None:
            raise S3DlioRayError(
                f"no journal of run {run_id} in s3://{bucket}/"
                f"{run_prefix(settings.prefix, run_id)}: it wrote nothing there, or was "
                "cleaned up already (check --bucket and --prefix)"
            )
        created = bool(journal.get("bucket_created"))
        bounds = journal_bounds(journal)
        return await cleanup(client, bucket, settings.prefix, run_id, created, bounds)
    finally:
        await client.aclose()


def cleanup_run(run_id: str, /, **overrides: Any) -> CleanupResult:
    """Remove what a run left (a killed run, or one whose cleanup was skipped), as its journal
    describes it: its own objects and incomplete uploads, the journal, and the bucket when the
    run created it and nothing else is in it. `overrides`: endpoint, bucket, prefix and the
    transport keys, as for run()."""
    return _blocking(cleanup_async(run_id, **overrides))


def _runs(source: RunResult | str | Path) -> Runs:
    return Runs((source,)) if isinstance(source, RunResult) else load_runs(source)


def report(*sources: str | Path, html: str | Path | None = None) -> Path:
    """Re-render result files as one HTML page: one result's beside it, several results'
    comparison as a new compare-A-B.html beside the first (or `html`). Answers the page."""
    page = report_page(sources, html)
    write_report(named_results(sources), page)
    return page


def compare(a: RunResult | str | Path, b: RunResult | str | Path) -> list[Difference]:
    """B against A for every metric of every phase they share: the ratio, and the interval of
    the difference with its verdict (`Difference.verdict`, `.word`: faster, slower, within
    noise). A path may name a result file or a repeat set (`run --repeat N`)."""
    return compare_results(_runs(a), _runs(b))

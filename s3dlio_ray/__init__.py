"""s3dlio-ray: a distributed S3 workload runner and transfer engine.

Run a workload (a YAML file, a mapping of the same keys, or Settings; keyword arguments are the
workload file's keys and win over it) and read what it measured:

    import s3dlio_ray
    report = s3dlio_ray.run("configs/quick.yaml", objects=20, object_size="1MiB")
    put, get = report.phases
    print(put.gbps, get.latency.p99_s, report.ok)
    print(get.bottleneck.cluster.describe())  # what set the rate: a Limit, its evidence
    report.write("results/")              # JSON, CSV and HTML, as `s3dlio-ray run` writes them

Start one in the background, change it while it goes, stop it early:

    handle = s3dlio_ray.start("configs/mixed.yaml", duration_s=60)
    handle.control(target_gbps=2.5)       # as `s3dlio-ray control` does
    handle.stop()
    result = handle.wait().result         # ended_by "interrupted", cleanup done

Compare two results, re-render their pages, copy files, remove what a killed run left:

    for diff in s3dlio_ray.compare("results/a.json", "results/b.json"):
        print(diff.phase, diff.metric, diff.ratio)
    s3dlio_ray.report("results/a.json")   # the HTML page beside it
    s3dlio_ray.copy("data/", "s3://bucket/data/", recursive=True, endpoint="http://...")
    s3dlio_ray.cleanup_run("RUN-ID", endpoint="http://...", bucket="bucket")

A bad setting raises ConfigError, an endpoint or cluster that cannot be used S3DlioRayError,
each one line. Every call works from a notebook's running event loop too. `import s3dlio_ray`
does not import Ray: names load on first use, and only a run on the Ray executor imports it.
"""

import importlib as _importlib
import typing as _typing

from s3dlio_ray._internal.model.version import VERSION as __version__

__all__ = [
    "ConfigError",
    "EmbeddedS3",
    "EndedBy",
    "Hooks",
    "Limit",
    "Phase",
    "PhaseBottleneck",
    "PhaseResult",
    "RunHandle",
    "RunReport",
    "RunResult",
    "S3DlioRayError",
    "Settings",
    "TrainingResult",
    "__version__",
    "cleanup_run",
    "compare",
    "copy",
    "load_result",
    "load_settings",
    "replay",
    "report",
    "run",
    "run_async",
    "start",
]

_WHERE = {
    "ConfigError": "s3dlio_ray._internal.model.errors",
    "S3DlioRayError": "s3dlio_ray._internal.model.errors",
    "EmbeddedS3": "s3dlio_ray._internal.storage.embedded",
    "EndedBy": "s3dlio_ray._internal.model.vocabulary",
    "Limit": "s3dlio_ray._internal.model.vocabulary",
    "PhaseBottleneck": "s3dlio_ray._internal.model.bottleneck",
    "Phase": "s3dlio_ray._internal.model.vocabulary",
    "PhaseResult": "s3dlio_ray._internal.model.results",
    "RunResult": "s3dlio_ray._internal.model.results",
    "Settings": "s3dlio_ray._internal.settings.schema",
    "TrainingResult": "s3dlio_ray._internal.model.results",
    "load_result": "s3dlio_ray._internal.reports.files",
    "Hooks": "s3dlio_ray._api",
    "RunHandle": "s3dlio_ray._api",
    "RunReport": "s3dlio_ray._api",
    "cleanup_run": "s3dlio_ray._api",
    "compare": "s3dlio_ray._api",
    "copy": "s3dlio_ray._api",
    "load_settings": "s3dlio_ray._api",
    "replay": "s3dlio_ray._api",
    "report": "s3dlio_ray._api",
    "run": "s3dlio_ray._api",
    "run_async": "s3dlio_ray._api",
    "start": "s3dlio_ray._api",
}

if _typing.TYPE_CHECKING:
    from s3dlio_ray._api import (
        Hooks,
        RunHandle,
        RunReport,
        cleanup_run,
        compare,
        copy,
        load_settings,
        replay,
        report,
        run,
        run_async,
        start,
    )
    from s3dlio_ray._internal.model.bottleneck import PhaseBottleneck
    from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
    from s3dlio_ray._internal.model.results import PhaseResult, RunResult, TrainingResult
    from s3dlio_ray._internal.model.vocabulary import EndedBy, Limit, Phase
    from s3dlio_ray._internal.reports.files import load_result
    from s3dlio_ray._internal.settings.schema import Settings
    from s3dlio_ray._internal.storage.embedded import EmbeddedS3


def __getattr__(name: str) -> object:
    if name not in _WHERE:
        raise AttributeError(f"module 's3dlio_ray' has no attribute {name!r}")
    value = getattr(_importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

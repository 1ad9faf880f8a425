"""s3dlio-ray: a distributed S3 workload runner and transfer engine.

    import s3dlio_ray
    report = s3dlio_ray.run("configs/quick.yaml", objects=20)
    print(report.phases[0].gbps, report.ok)

Names are loaded on first use, so `import s3dlio_ray` stays light (Ray is imported only by a
run on the Ray executor).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from s3dlio_ray._internal.model.version import VERSION as __version__

__all__ = [
    "ConfigError",
    "EmbeddedS3",
    "EndedBy",
    "Hooks",
    "Phase",
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
    "report": "s3dlio_ray._api",
    "run": "s3dlio_ray._api",
    "run_async": "s3dlio_ray._api",
    "start": "s3dlio_ray._api",
}

if TYPE_CHECKING:
    from s3dlio_ray._api import (
        Hooks,
        RunHandle,
        RunReport,
        cleanup_run,
        compare,
        copy,
        load_settings,
        report,
        run,
        run_async,
        start,
    )
    from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
    from s3dlio_ray._internal.model.results import PhaseResult, RunResult, TrainingResult
    from s3dlio_ray._internal.model.vocabulary import EndedBy, Phase
    from s3dlio_ray._internal.reports.files import load_result
    from s3dlio_ray._internal.settings.schema import Settings
    from s3dlio_ray._internal.storage.embedded import EmbeddedS3


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 's3dlio_ray' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

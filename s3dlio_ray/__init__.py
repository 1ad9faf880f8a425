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

__version__ = "0.1.0"

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
    "ConfigError": "s3dlio_ray.errors",
    "S3DlioRayError": "s3dlio_ray.errors",
    "EmbeddedS3": "s3dlio_ray.embedded",
    "EndedBy": "s3dlio_ray.results",
    "Phase": "s3dlio_ray.results",
    "PhaseResult": "s3dlio_ray.results",
    "RunResult": "s3dlio_ray.results",
    "Settings": "s3dlio_ray.config",
    "TrainingResult": "s3dlio_ray.results",
    "load_result": "s3dlio_ray.report",
    "Hooks": "s3dlio_ray.api",
    "RunHandle": "s3dlio_ray.api",
    "RunReport": "s3dlio_ray.api",
    "cleanup_run": "s3dlio_ray.api",
    "compare": "s3dlio_ray.api",
    "copy": "s3dlio_ray.api",
    "load_settings": "s3dlio_ray.api",
    "report": "s3dlio_ray.api",
    "run": "s3dlio_ray.api",
    "run_async": "s3dlio_ray.api",
    "start": "s3dlio_ray.api",
}

if TYPE_CHECKING:
    from s3dlio_ray.api import (
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
    from s3dlio_ray.config import Settings
    from s3dlio_ray.embedded import EmbeddedS3
    from s3dlio_ray.errors import ConfigError, S3DlioRayError
    from s3dlio_ray.report import load_result
    from s3dlio_ray.results import EndedBy, Phase, PhaseResult, RunResult, TrainingResult


def __getattr__(name: str) -> Any:
    if name not in _WHERE:
        raise AttributeError(f"module 's3dlio_ray' has no attribute {name!r}")
    value = getattr(importlib.import_module(_WHERE[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(__all__)

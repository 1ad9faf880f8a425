"""Result files put where the user keeps them: an `output: s3://BUCKET/PREFIX/` goes to the run's
own store once the files are written (also after a run that failed), so a RayJob's results
outlive its pods."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from s3dlio_ray._internal.execution.build import build_client
from s3dlio_ray._internal.model.copy_plan import S3Location
from s3dlio_ray._internal.run.plan import plan_access
from s3dlio_ray._internal.settings.schema import Settings


def in_store(output: str | None) -> bool:
    return bool(output) and str(output).startswith("s3://")


async def store_results(settings: Settings, files: Sequence[Path], output: str) -> list[str]:
    """Upload the result files under `output` (a prefix: each keeps its name), with the run's
    endpoints and credentials; answers their URLs."""
    location = S3Location.parse(output)
    prefix = (
        location.prefix
        if not location.prefix or location.prefix.endswith("/")
        else (location.prefix + "/")
    )
    client = build_client(settings, plan_access(settings))
    stored = []
    try:
        for path in files:
            key = f"{prefix}{path.name}"
            await client.put_object(location.bucket, key, [path.read_bytes()])
            stored.append(f"s3://{location.bucket}/{key}")
    finally:
        await client.aclose()
    return stored

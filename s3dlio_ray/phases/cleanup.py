"""CLEANUP: delete the run's objects and incomplete multipart uploads, and the bucket only when
the run created it (or `remove_bucket: always`). It runs on the driver's own client, after the
other phases, even when one of them failed."""

from __future__ import annotations

import time

from s3dlio_ray.phases.base import Run
from s3dlio_ray.results import CleanupResult
from s3dlio_ray.s3.client import S3Client
from s3dlio_ray.workload import run_prefix


async def cleanup(client: S3Client, bucket: str, prefix: str, remove_bucket: bool) -> CleanupResult:
    """Delete what lies under `prefix` and its incomplete uploads; the bucket when asked to."""
    started = time.perf_counter()
    keys = [info.key async for info in client.list_objects(bucket, prefix)]
    deleted, failed = await client.delete_objects(bucket, keys)
    aborted = 0
    for upload in await client.list_multipart_uploads(bucket, prefix):
        await client.abort_multipart_upload(bucket, upload.key, upload.upload_id)
        aborted += 1
    removed = remove_bucket and not failed
    if removed:
        await client.delete_bucket(bucket)
    return CleanupResult(deleted, tuple(failed), aborted, removed, time.perf_counter() - started)


class Cleanup:
    async def run(self, run: Run, index: int) -> None:
        settings = run.settings
        remove = settings.remove_bucket == "always" or (
            settings.remove_bucket == "created" and run.bucket_created
        )
        run.cleanup = await cleanup(
            run.client, run.bucket, run_prefix(settings.prefix, run.run_id), remove
        )


STEP = Cleanup()

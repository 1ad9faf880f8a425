"""CLEANUP: remove what the run wrote (its own keys, its incomplete uploads, its journal), and
the bucket only when the run created it and nothing else is left. It runs on the driver's own
client, after every engine has stopped, even when a phase failed."""

from __future__ import annotations

from s3dlio_ray._internal.execution.phases.step import Run
from s3dlio_ray._internal.storage.journal import cleanup


class Cleanup:
    async def run(self, run: Run, index: int) -> None:
        settings = run.settings
        remove = settings.remove_bucket == "always" or (
            settings.remove_bucket == "created" and run.bucket_created
        )
        run.cleanup = await cleanup(run.client, run.bucket, settings.prefix, run.run_id, remove)


STEP = Cleanup()

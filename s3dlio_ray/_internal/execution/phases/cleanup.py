"""CLEANUP: remove what the run wrote (its own keys within its bounds, its incomplete uploads,
its journal), and the bucket only when the run created it and nothing else is left. It runs on
the driver's own client, after every engine has stopped, even when a phase failed."""

from __future__ import annotations

from s3dlio_ray._internal.execution.phases.step import Run
from s3dlio_ray._internal.model.keys import KeyBounds
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.journal import cleanup


class Cleanup:
    async def run(self, run: Run, index: int) -> None:
        settings = run.settings
        remove = settings.remove_bucket == "always" or (
            settings.remove_bucket == "created" and run.bucket_created
        )
        dataset = {Phase.DATAGEN, Phase.TRAIN} & set(settings.phase_names)
        bounds = KeyBounds(settings.objects, settings.num_files_train if dataset else 0)
        run.cleanup = await cleanup(
            run.client, run.bucket, settings.prefix, run.run_id, remove, bounds
        )


STEP = Cleanup()

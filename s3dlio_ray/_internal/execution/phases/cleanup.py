"""CLEANUP: remove what the run wrote (its own keys within its bounds, its incomplete uploads,
its journal), and the bucket only when the run created it and nothing else is left. It runs on
the driver's own client, after every engine has stopped, even when a phase failed."""

from __future__ import annotations

from s3dlio_ray._internal.execution.phases.step import Run
from s3dlio_ray._internal.model.keys import KeyBounds
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.journal import cleanup, journal_bounds, read_journal


class Cleanup:
    async def run(self, run: Run, index: int) -> None:
        settings = run.settings
        remove = settings.remove_bucket == "always" or (
            settings.remove_bucket == "created" and run.bucket_created
        )
        dataset = {Phase.DATAGEN, Phase.TRAIN} & set(settings.phase_names)
        mine = KeyBounds(settings.objects, settings.num_files_train if dataset else 0)
        # A run of this id before this one (a kept dataset, a cleanup-only run) may have
        # written more: its journal says how much.
        journal = await read_journal(run.client, run.bucket, settings.prefix, run.run_id)
        bounds = mine if journal is None else mine.widened(journal_bounds(journal))
        run.cleanup = await cleanup(
            run.client, run.bucket, settings.prefix, run.run_id, remove, bounds
        )


STEP = Cleanup()

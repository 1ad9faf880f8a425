"""CLEANUP: remove what the run wrote (its own keys within its bounds, its incomplete uploads,
its journal), and the bucket only when the run created it and nothing else is left. It runs on
the driver's own client, after every engine has stopped, even when a phase failed."""

from __future__ import annotations

from dataclasses import replace

from s3dlio_ray._internal.execution.phases.step import Run, planned_bounds
from s3dlio_ray._internal.storage.journal import cleanup, journal_bounds, read_journal


class Cleanup:
    async def run(self, run: Run, index: int) -> None:
        settings = run.settings
        remove = settings.remove_bucket == "always" or (
            settings.remove_bucket == "created" and run.bucket_created
        )
        mine = planned_bounds(run)
        # The journal says what was written: this run's later rounds and mixed keys, as it
        # rewrote it when its phases ended, and a run of this id before this one (a kept
        # dataset, a cleanup-only run) may have written more objects or files.
        journal = await read_journal(run.client, run.bucket, settings.prefix, run.run_id)
        if journal is None:
            bounds = mine
        else:
            recorded = journal_bounds(journal)
            bounds = recorded.widened(
                replace(
                    mine, rounds=recorded.rounds, mixed=recorded.mixed, replays=recorded.replays
                )
            )
        run.cleanup = await cleanup(
            run.client, run.bucket, settings.prefix, run.run_id, remove, bounds
        )


STEP = Cleanup()

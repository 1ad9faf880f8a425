"""SLEEP: a pause between phases (`sleep_s`), as long-duration workloads use to let the
endpoint settle (or its caches cool) before the next operation."""

from __future__ import annotations

from s3dlio_ray._internal.execution.phases.step import Run


class Sleep:
    async def run(self, run: Run, index: int) -> None:
        await run.executor.pause(run.settings_for(index).sleep_s)


STEP = Sleep()

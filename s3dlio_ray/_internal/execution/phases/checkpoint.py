"""CHECKPOINT and RESTORE: what a training job does to save its model and load it back.

A checkpoint of `model_size` bytes is written by every engine at once, one shard each (sizes
differing by a byte at most), as multipart uploads with the part size the tuning module gives a
shard of that size; the phase's elapsed time is the seconds a checkpoint takes. A restore reads
the latest checkpoint's shards back, every byte verified. Each checkpoint phase writes a new
checkpoint (`ckpt-NNNN-SSSSS` under the run's prefix), which cleanup removes with the rest.
"""

from __future__ import annotations

from s3dlio_ray._internal.execution.phases.step import Run, run_recorded, spec_of
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import checkpoint_shards
from s3dlio_ray._internal.model.vocabulary import Phase


def _spec(run: Run, phase: Phase, index: int) -> PhaseSpec:
    return spec_of(run, run.settings_for(index), phase)


class Checkpoint:
    async def run(self, run: Run, index: int) -> None:
        spec = _spec(run, Phase.CHECKPOINT, index)
        number = sum(1 for p in run.phases if p.phase == Phase.CHECKPOINT)
        shards = checkpoint_shards(
            spec.key_prefix, number, run.settings_for(index).model_size, run.executor.engines
        )
        await run_recorded(run, spec, shards)
        run.checkpoint = shards


class Restore:
    async def run(self, run: Run, index: int) -> None:
        if run.checkpoint is None:
            raise ConfigError("phases: restore reads back a checkpoint: none was written")
        await run_recorded(run, _spec(run, Phase.RESTORE, index), run.checkpoint)


CHECKPOINT = Checkpoint()
RESTORE = Restore()

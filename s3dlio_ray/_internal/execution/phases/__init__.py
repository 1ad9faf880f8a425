"""The phases a workload runs, one module each: put, get, mixed, listing (list), stat, delete,
checkpoint (with restore), train (with datagen), copy (upload and download: `cp`), replay,
sleep, cleanup.

Every phase is a `Step` of the run; all but sleep and cleanup are also a `Transfer` each engine
runs over its share of the keys, through the engine's one run loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases import (
    checkpoint,
    cleanup,
    copy,
    delete,
    get,
    listing,
    mixed,
    put,
    replay,
    sleep,
    stat,
    train,
)
from s3dlio_ray._internal.execution.phases.step import Step
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec, Transfer, TransferFactory
from s3dlio_ray._internal.model.vocabulary import Phase

STEPS: Mapping[Phase, Step] = {
    Phase.PUT: put.STEP,
    Phase.GET: get.STEP,
    Phase.MIXED: mixed.STEP,
    Phase.LIST: listing.STEP,
    Phase.STAT: stat.STEP,
    Phase.DELETE: delete.STEP,
    Phase.CHECKPOINT: checkpoint.CHECKPOINT,
    Phase.RESTORE: checkpoint.RESTORE,
    Phase.DATAGEN: train.DATAGEN,
    Phase.TRAIN: train.TRAIN,
    Phase.UPLOAD: copy.UPLOAD,
    Phase.DOWNLOAD: copy.DOWNLOAD,
    Phase.REPLAY: replay.STEP,
    Phase.SLEEP: sleep.STEP,
    Phase.CLEANUP: cleanup.STEP,
}

TRANSFERS: Mapping[Phase, TransferFactory] = {
    Phase.PUT: put.transfer,
    Phase.GET: get.transfer,
    Phase.MIXED: mixed.transfer,
    Phase.LIST: listing.transfer,
    Phase.STAT: stat.transfer,
    Phase.DELETE: delete.transfer,
    Phase.CHECKPOINT: put.transfer,
    Phase.RESTORE: get.transfer,
    Phase.DATAGEN: put.transfer,
    Phase.TRAIN: train.transfer,
    Phase.UPLOAD: copy.transfer,
    Phase.DOWNLOAD: copy.transfer,
    Phase.REPLAY: replay.transfer,
}


def transfer_for(
    spec: PhaseSpec, keys: Sequence[str], limits: ShareLimits, task_id: int
) -> Transfer:
    """The Transfer of one engine's share of a phase."""
    return TRANSFERS[spec.phase](spec, keys, limits, task_id)

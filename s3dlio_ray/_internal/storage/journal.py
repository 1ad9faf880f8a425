"""What a run owns in a bucket, and the journal that says so.

A run writes only under its own prefix (PREFIX/RUN_ID/), only keys of its own naming (obj-N,
a timed PUT's obj-N.R, a mixed phase's mixed-T-N, a checkpoint's ckpt-C-S), and refuses to start
writing where that prefix
already holds objects, so every key of its naming there is one it wrote. Before its first PUT it
stores a small journal object there (run id, seed, whether it created the bucket, the key
layout); cleanup, in the run or later from `s3dlio-ray cleanup --run-id`, removes exactly the keys
of that naming, the run's incomplete uploads and the journal, and the bucket only when the run
created it and nothing else is left in it.
"""

from __future__ import annotations

import json
import logging
import re
import time
from collections.abc import Mapping, Sequence
from typing import Any

from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
from s3dlio_ray._internal.model.keys import RUN_NAMES, KeyBounds, cleanup_command, run_prefix
from s3dlio_ray._internal.model.results import CleanupResult
from s3dlio_ray._internal.storage.s3.client import MAX_DELETE_BATCH, MultipartUpload, S3Client
from s3dlio_ray._internal.storage.s3.errors import S3Error

log = logging.getLogger(__name__)

JOURNAL_NAME = ".s3dlio-ray-run.json"


def journal_key(prefix: str, run_id: str) -> str:
    return run_prefix(prefix, run_id) + JOURNAL_NAME


def owned_key(prefix: str, run_id: str) -> re.Pattern[str]:
    """The keys a run of this prefix and id may have written, and nothing else."""
    names = f"{RUN_NAMES}|{re.escape(JOURNAL_NAME)}"
    return re.compile(re.escape(run_prefix(prefix, run_id)) + f"(?:{names})")


async def refuse_a_used_prefix(
    client: S3Client, bucket: str, prefix: str, run_id: str, endpoints: Sequence[str]
) -> None:
    """A run that writes never shares its prefix: one LIST of at most one key says whether it
    is free."""
    page = await client.list_objects_page(bucket, run_prefix(prefix, run_id), max_keys=1)
    if not page.objects:
        return
    used = (
        f"s3://{bucket}/{run_prefix(prefix, run_id)} already holds objects "
        f"({page.objects[0].key}): a run that writes starts on an empty prefix; choose another "
        "run_id or prefix"
    )
    if await read_journal(client, bucket, prefix, run_id) is None:
        raise ConfigError(f"{used} (no run of this tool wrote them: nothing to clean up)")
    command = cleanup_command(run_id, bucket, prefix, endpoints)
    raise ConfigError(f"{used}, or remove that run's objects with: {command}")


async def write_journal(
    client: S3Client, bucket: str, prefix: str, run_id: str, record: Mapping[str, Any]
) -> None:
    body = json.dumps({"tool": "s3dlio-ray", "run_id": run_id, **record}, indent=2).encode()
    await client.put_object(bucket, journal_key(prefix, run_id), [body])


async def read_journal(
    client: S3Client, bucket: str, prefix: str, run_id: str
) -> dict[str, Any] | None:
    """The run's journal, or None when it left none (it never wrote, or it was cleaned up)."""
    try:
        result = await client.get_object(bucket, journal_key(prefix, run_id))
    except S3Error as exc:
        if exc.code in ("NoSuchKey", "NotFound"):
            return None
        raise
    try:
        journal = json.loads(bytes(result.body))
    except ValueError:
        journal = None
    if not isinstance(journal, dict) or journal.get("run_id") != run_id:
        raise S3DlioRayError(
            f"s3://{bucket}/{journal_key(prefix, run_id)} is not this tool's journal of run "
            f"{run_id}; nothing was removed"
        )
    return journal


async def _uploads(client: S3Client, bucket: str, prefix: str) -> list[MultipartUpload]:
    """Incomplete uploads under `prefix`; none, with a warning, from a store that does not
    implement listing them."""
    try:
        return await client.list_multipart_uploads(bucket, prefix)
    except S3Error as exc:
        if exc.status != 501 and exc.code != "NotImplemented":
            raise
        log.warning(
            "cleanup: the endpoint cannot list incomplete multipart uploads (%s); any the run "
            "left stay until the bucket's lifecycle rules remove them",
            exc.code or exc.status,
        )
        return []


async def _delete(
    client: S3Client, bucket: str, keys: list[str], deleted: int, failed: list[str]
) -> tuple[int, list[str]]:
    """Delete one batch as the listing goes, so cleanup holds one page of keys, not them all."""
    done, missed = await client.delete_objects(bucket, keys) if keys else (0, [])
    return deleted + done, failed + missed


def journal_bounds(journal: Mapping[str, Any]) -> KeyBounds:
    """The bounds a run's journal records: its objects, its dataset's files (none when it
    generated no dataset), its timed PUTs' later rounds and its mixed keys (absent from a
    journal written before they were kept: no bound)."""
    objects = journal.get("objects")
    dataset = journal.get("dataset")
    files = dataset.get("num_files_train") if isinstance(dataset, dict) else 0
    rounds = journal.get("rounds")
    return KeyBounds(
        objects if isinstance(objects, int) else None,
        files if isinstance(files, int) else None,
        rounds if isinstance(rounds, int) else None,
        _pair(journal.get("mixed")),
        _pair(journal.get("checkpoints")),
        replays if isinstance(replays := journal.get("replays"), int) else None,
    )


def _pair(value: Any) -> tuple[int, int] | None:
    if isinstance(value, list) and len(value) == 2 and all(isinstance(n, int) for n in value):
        return value[0], value[1]
    return None


def bounds_record(bounds: KeyBounds) -> dict[str, Any]:
    """A journal's fields for a run's later rounds, mixed keys and checkpoint shards (null: not
    bounded)."""
    return {
        "rounds": bounds.rounds,
        "mixed": list(bounds.mixed) if bounds.mixed else None,
        "checkpoints": list(bounds.checkpoints) if bounds.checkpoints else None,
        "replays": bounds.replays,
    }


async def record_written(
    client: S3Client, bucket: str, prefix: str, run_id: str, written: KeyBounds, first: bool
) -> None:
    """Rewrite the run's journal with how far its later rounds and mixed keys went, once its
    phases have ended, so cleanup keeps to that rather than to every key of the run's naming:
    the first of a run's configurations replaces the journal's planned bounds, a later one
    widens them."""
    journal = await read_journal(client, bucket, prefix, run_id)
    if journal is None:
        return
    if not first:
        written = written.widened(journal_bounds(journal))
    record = {k: v for k, v in journal.items() if k not in ("tool", "run_id")}
    stored = bounds_record(written)
    record.update(rounds=stored["rounds"], mixed=stored["mixed"], replays=stored["replays"])
    await write_journal(client, bucket, prefix, run_id, record)


async def cleanup(
    client: S3Client,
    bucket: str,
    prefix: str,
    run_id: str,
    remove_bucket: bool,
    bounds: KeyBounds,
) -> CleanupResult:
    """Delete the run's own keys under its prefix (of its naming, within its bounds) and its
    incomplete uploads; the bucket too when asked and nothing else is left in it. Keys of other
    names, and of its naming past its bounds (written beside the run), are never touched."""
    started = time.perf_counter()
    where = run_prefix(prefix, run_id)
    pattern = owned_key(prefix, run_id)

    def owned(key: str) -> bool:
        return bool(pattern.fullmatch(key)) and bounds.hold(key[len(where) :])

    journal = journal_key(prefix, run_id)
    deleted, journal_found = 0, False
    failed: list[str] = []
    batch: list[str] = []
    async for info in client.list_objects(bucket, where):
        if info.key == journal:
            journal_found = True
        elif owned(info.key):
            batch.append(info.key)
        if len(batch) == MAX_DELETE_BATCH:
            deleted, failed = await _delete(client, bucket, batch, deleted, failed)
            batch = []
    deleted, failed = await _delete(client, bucket, batch, deleted, failed)
    aborted = 0
    for upload in await _uploads(client, bucket, where):
        if owned(upload.key):
            await client.abort_multipart_upload(bucket, upload.key, upload.upload_id)
            aborted += 1
    if journal_found and not failed:
        _, failed = await client.delete_objects(bucket, [journal])
    removed = False
    if remove_bucket and not failed:
        page = await client.list_objects_page(bucket, max_keys=1)
        if not page.objects:
            await client.delete_bucket(bucket)
            removed = True
    return CleanupResult(deleted, tuple(failed), aborted, removed, time.perf_counter() - started)

"""UPLOAD and DOWNLOAD (`s3dlio-ray cp`): files between a local path and an S3 prefix, one
operation per file, sharded over the engines like any phase (a per-node download gives every
node all of them), under the same controller, metrics and result files.

An upload computes each file's CRC32 from the buffers it sends (per part, combined), sends it
for the store to check (`checksum_headers`), and the driver keeps every CRC in the manifest
beside the objects. A download checks each file against the manifest (else against the store's
own full-object checksum) before it takes its final name. `sync` skips what the destination
already holds with the same size and CRC32; `clobber: false` skips whatever is there. Nothing
is ever deleted.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import NamedTuple, Protocol, cast

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import PhaseOutcome, Run, spec_of
from s3dlio_ray._internal.execution.phases.transfer import (
    Done,
    PhaseSpec,
    Transfer,
    TransferOutcome,
)
from s3dlio_ray._internal.model import crc
from s3dlio_ray._internal.model.copy_plan import (
    MANIFEST,
    CopyItems,
    CopySpec,
    manifest_entries,
    manifest_text,
    selected,
)
from s3dlio_ray._internal.model.errors import ConfigError, S3DlioRayError
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.files import FileError, SourceFile, TargetFile
from s3dlio_ray._internal.storage.object_store import ObjectStore
from s3dlio_ray._internal.storage.s3.client import CRC32_HEADER, PartGate, S3Client
from s3dlio_ray._internal.storage.s3.errors import S3Error
from s3dlio_ray._internal.storage.store import UploadedFile


class FileStore(Protocol):
    """An object store that moves files: this project's. The boto3 baseline does not; the
    settings refuse a copy with it (config: _check_copy), so every copy's store is one."""

    async def upload(
        self, bucket: str, key: str, source: SourceFile, gate: PartGate, send_crc32: bool
    ) -> UploadedFile: ...

    async def download(
        self, bucket: str, key: str, size: int, target: TargetFile, gate: PartGate
    ) -> tuple[int, Mapping[str, str]]: ...

    async def stored_crc32(self, bucket: str, key: str) -> str | None: ...


class CopyOp(NamedTuple):
    name: str
    size: int
    crc: int | None
    """What the destination is known to hold (for sync), or what the manifest says (download)."""
    label: str

    def __str__(self) -> str:
        return self.label


REFUSED_CHECKSUMS = ("NotImplemented", "InvalidRequest", "InvalidArgument")


class _Copy:
    def __init__(self, spec: PhaseSpec, items: CopyItems) -> None:
        assert spec.copy is not None
        self.phase = spec.phase
        self._copy = spec.copy
        self._items = items
        self._checks: dict[str, int] = {}
        self._failures = 0
        self._digests: dict[str, tuple[int, int]] = {}

    def cost(self, op: CopyOp) -> int:
        return op.size

    def _count(self, what: str) -> None:
        self._checks[what] = self._checks.get(what, 0) + 1

    def outcome(self) -> TransferOutcome:
        verified = sum(n for what, n in self._checks.items() if what.startswith("crc32"))
        return TransferOutcome(
            verified, self._failures, checks=dict(self._checks), digests=dict(self._digests)
        )


class Upload(_Copy):
    """Files to objects. With checksum headers sent, each object's stored checksum is read back
    (one HEAD): one the store keeps is checked against the file's, one it does not keep (it took
    the header unchecked) is counted so, and no line claims a check that did not happen."""

    def operations(self) -> Iterator[CopyOp]:
        copy = self._copy
        for name, size, known in self._items.items():
            yield CopyOp(name, size, known, f"{copy.remote.bucket}/{copy.key_for(name)}")

    async def perform(self, op: CopyOp, store: ObjectStore, gate: PartGate) -> Done:
        copy = self._copy
        with SourceFile(Path(copy.path_for(op.name)), op.size) as source:
            if op.crc is not None and await source.crc32() == op.crc:
                self._count("skipped: same size and crc32")
                self._digests[op.name] = (op.size, op.crc)
                return Done(0)
            try:
                uploaded = await cast(FileStore, store).upload(
                    copy.remote.bucket, copy.key_for(op.name), source, gate, copy.checksum_headers
                )
            except S3Error as exc:
                if copy.checksum_headers and exc.code in REFUSED_CHECKSUMS:
                    raise ConfigError(
                        f"{exc}: the store may not take S3 checksum headers; set "
                        "checksum_headers: false (--no-checksum-headers): the manifest still "
                        "verifies every file"
                    ) from None
                raise
        self._digests[op.name] = (op.size, uploaded.crc32)
        if copy.checksum_headers:
            self._count(await self._sent(store, copy.key_for(op.name), uploaded))
        else:
            self._count("crc32 in the manifest")
        return Done(op.size)

    async def _sent(self, store: ObjectStore, key: str, uploaded: UploadedFile) -> str:
        """What became of the CRC32 sent with the object, as the checks count it."""
        bucket = self._copy.remote.bucket
        stored = await cast(FileStore, store).stored_crc32(bucket, key)
        if stored is None:
            return "crc32 sent, not kept by the store"
        if not uploaded.kept_as(stored):
            raise S3DlioRayError(
                f"s3://{bucket}/{key}: the store kept CRC32 {stored} for a file of CRC32 "
                f"{crc.header(uploaded.crc32)}"
            )
        return "crc32 sent, kept by the store"


class Download(_Copy):
    def operations(self) -> Iterator[CopyOp]:
        copy = self._copy
        for name, size, known in self._items.items():
            yield CopyOp(name, size, known, copy.path_for(name))

    async def perform(self, op: CopyOp, store: ObjectStore, gate: PartGate) -> Done:
        copy = self._copy
        path = Path(op.label)
        if path.is_file():
            if not copy.clobber:
                self._count("skipped: already there")
                return Done(0)
            if copy.sync and op.crc is not None and path.stat().st_size == op.size:
                with SourceFile(path, op.size) as source:
                    same = await source.crc32() == op.crc
                if same:
                    self._count("skipped: same size and crc32")
                    return Done(0)
        target = TargetFile(path)
        try:
            key = copy.key_for(op.name)
            got, headers = await cast(FileStore, store).download(
                copy.remote.bucket, key, op.size, target, gate
            )
            expected, against = op.crc, "the manifest"
            if expected is None and CRC32_HEADER in headers:
                expected, against = crc.from_header(headers[CRC32_HEADER]), "the store's checksum"
            if expected is None:
                self._count("unverified: no checksum kept")
            elif got != expected:
                self._failures += 1
                raise FileError(
                    f"s3://{copy.remote.bucket}/{key}: CRC32 {got:08x} where {against} says "
                    f"{expected:08x}: not kept"
                )
            else:
                self._count(f"crc32 against {against}")
            target.commit()
        except BaseException:
            target.discard()
            raise
        return Done(op.size)


def transfer(spec: PhaseSpec, items: Sequence[str], limits: ShareLimits, task_id: int) -> Transfer:
    if not isinstance(items, CopyItems):
        raise TypeError("a copy's share is CopyItems")
    return Upload(spec, items) if spec.phase == Phase.UPLOAD else Download(spec, items)


def local_files(copy: CopySpec, include: Sequence[str], exclude: Sequence[str]) -> CopyItems:
    """The files an upload copies: the one named, or every file below the folder that passes
    the patterns, in name order (links to files are followed, to folders not)."""
    root = Path(copy.local)
    if copy.single:
        return CopyItems([root.name], [root.stat().st_size], [-1])
    names, sizes = [], []
    for folder, subfolders, files in os.walk(root):
        subfolders.sort()
        for file in sorted(files):
            path = Path(folder, file)
            name = path.relative_to(root).as_posix()
            if selected(name, include, exclude) and path.is_file():
                names.append(name)
                sizes.append(path.stat().st_size)
    return CopyItems(names, sizes, [-1] * len(names))


async def read_manifest(client: S3Client, copy: CopySpec) -> dict[str, tuple[int, int]]:
    """The manifest an earlier copy kept in the destination prefix; {} when there is none."""
    try:
        result = await client.get_object(copy.remote.bucket, copy.manifest_key)
    except S3Error as exc:
        if exc.code == "NoSuchKey" or exc.status == 404:
            return {}
        raise
    where = f"s3://{copy.remote.bucket}/{copy.manifest_key}"
    return manifest_entries(bytes(result.body), where)


async def _remote_objects(client: S3Client, copy: CopySpec) -> dict[str, int]:
    """Each object under the copy's prefix: its name below it and its size (the manifest out)."""
    folder = copy.folder
    found = {}
    async for info in client.list_objects(copy.remote.bucket, folder):
        name = info.key[len(folder) :]
        if name != MANIFEST:
            found[name] = info.size
    return found


async def _run_copy(run: Run, spec: PhaseSpec, items: CopyItems, skipped: int) -> PhaseOutcome:
    """Run the copy and record its result (with the files the driver skipped before it
    started); the caller raises its fatal error once it has kept what was copied."""
    outcome = await run.executor.run_phase(spec, items)
    result = outcome.result
    if skipped:
        checks = {**result.checks, "skipped: already there": skipped}
        result = dataclasses.replace(result, checks=checks)
    run.phases.append(result)
    return outcome


def _planned(run: Run) -> CopySpec:
    """The copy the run's plan made of the settings (a copy phase always has one)."""
    assert run.copy is not None, "the plan makes one for every run with a copy phase"
    return run.copy


class UploadStep:
    async def run(self, run: Run, index: int) -> None:
        settings = run.settings_for(index)
        copy = _planned(run)
        client = run.client
        if not await client.bucket_exists(copy.remote.bucket):
            raise ConfigError(
                f"cp: bucket {copy.remote.bucket} does not exist (cp never creates one): create "
                "it first"
            )
        files = local_files(copy, settings.include, settings.exclude)
        if not files:
            raise ConfigError(f"cp: {copy.local}: no file to copy passes include / exclude")
        kept = await read_manifest(client, copy)
        there = await _remote_objects(client, copy) if copy.sync or not copy.clobber else {}
        names, sizes, crcs, skipped = [], [], [], 0
        for name, size, _ in files.items():
            key_name = copy.remote_name(name)
            if not copy.clobber and key_name in there:
                skipped += 1
                continue
            same_size = there.get(key_name) == size and kept.get(key_name, (-1, -1))[0] == size
            names.append(name)
            sizes.append(size)
            crcs.append(kept[key_name][1] if copy.sync and same_size else -1)
        spec = spec_of(run, settings, Phase.UPLOAD, copy=copy)
        outcome = await _run_copy(run, spec, CopyItems(names, sizes, crcs), skipped)
        stored = {copy.remote_name(name): d for name, d in outcome.digests.items()}
        if stored:
            merged = {**kept, **stored}
            await client.put_object(copy.remote.bucket, copy.manifest_key, [manifest_text(merged)])
        if outcome.fatal is not None:
            raise S3DlioRayError(outcome.fatal)


class DownloadStep:
    async def run(self, run: Run, index: int) -> None:
        settings = run.settings_for(index)
        copy = _planned(run)
        client = run.client
        kept = await read_manifest(client, copy)
        if copy.single:
            name = copy.remote.prefix.rsplit("/", 1)[-1]
            try:
                info = await client.head_object(copy.remote.bucket, copy.remote.prefix)
            except S3Error as exc:
                if exc.status != 404:
                    raise
                raise ConfigError(
                    f"cp: {copy.remote}: no such object (check the key; a prefix takes --recursive)"
                ) from None
            found = {name: info.size}
        else:
            found = {
                name: size
                for name, size in (await _remote_objects(client, copy)).items()
                if selected(name, settings.include, settings.exclude)
            }
        if not found:
            raise ConfigError(f"cp: {copy.remote}: no object to copy passes include / exclude")
        names = sorted(found)
        sizes = [found[name] for name in names]
        crcs = [kept[n][1] if kept.get(n, (-1, -1))[0] == found[n] else -1 for n in names]
        spec = spec_of(run, settings, Phase.DOWNLOAD, copy=copy, per_node=copy.per_node)
        outcome = await _run_copy(run, spec, CopyItems(names, sizes, crcs), 0)
        if outcome.fatal is not None:
            raise S3DlioRayError(outcome.fatal)


UPLOAD = UploadStep()
DOWNLOAD = DownloadStep()

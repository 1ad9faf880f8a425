"""The op-log: one line per HTTP request, zstd-compressed TSV, streamed to disk as it happens.

The columns are those s3dlio and sai3-bench write (and warp-style replay tools read). Each engine
process writes its own file on its own node (NAME-HOST-PID.tsv.zst beside the path asked for), so
no request ever crosses the network to be logged and memory stays at the compressor's buffers.
"""

from __future__ import annotations

import datetime
import os
import socket
from pathlib import Path
from typing import BinaryIO

import zstandard

from s3dlio_ray._internal.storage.s3.client import RequestRecord

COLUMNS = (
    "idx",
    "thread",
    "op",
    "client_id",
    "n_objects",
    "bytes",
    "endpoint",
    "file",
    "error",
    "start",
    "first_byte",
    "end",
    "duration_ns",
)
SUFFIX = ".tsv.zst"
OPERATIONS = {
    "GetObject": "GET",
    "PutObject": "PUT",
    "UploadPart": "PUT",
    "HeadObject": "HEAD",
    "DeleteObjects": "DELETE",
    "ListObjectsV2": "LIST",
}


def oplog_path(base: str | Path, client_id: str) -> Path:
    """This process's file for op-log `base`: "ops.tsv.zst" -> "ops-CLIENT.tsv.zst"."""
    path = Path(base)
    stem = path.name.removesuffix(SUFFIX)
    return path.with_name(f"{stem}-{client_id}{SUFFIX}")


def oplog_pattern(base: str | Path) -> str:
    """Where to look for a run's op-log files."""
    return str(oplog_path(base, "*"))


def _timestamp(ns: int | None) -> str:
    if ns is None:
        return ""
    moment = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC)
    return f"{moment:%Y-%m-%dT%H:%M:%S}.{ns % 1_000_000_000:09d}Z"


def _field(text: str) -> str:
    return text.replace("\t", " ").replace("\n", " ")


class OpLog:
    """Writes RequestRecords as they come; close() finishes the zstd frame."""

    def __init__(self, base: str | Path, level: int = 3) -> None:
        self.client_id = f"{socket.gethostname()}-{os.getpid()}"
        self.path = oplog_path(base, self.client_id)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file: BinaryIO = self.path.open("wb")
        self._out = zstandard.ZstdCompressor(level=level).stream_writer(self._file)
        self._out.write(("\t".join(COLUMNS) + "\n").encode())
        self._idx = 0
        self._thread = str(os.getpid())

    def record(self, request: RequestRecord) -> None:
        """Called by the S3 client after every request, successful or not."""
        line = "\t".join(
            (
                str(self._idx),
                self._thread,
                OPERATIONS.get(request.operation, request.operation),
                self.client_id,
                str(request.n_objects),
                str(request.nbytes),
                request.endpoint,
                _field(request.resource),
                _field(request.error),
                _timestamp(request.start_ns),
                _timestamp(request.first_byte_ns),
                _timestamp(request.end_ns),
                str(request.end_ns - request.start_ns),
            )
        )
        self._out.write(line.encode() + b"\n")
        self._idx += 1

    def close(self) -> None:
        if not self._out.closed:
            self._out.close()

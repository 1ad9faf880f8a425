"""The files a copy reads and writes: an upload's parts read straight into the buffers it sends,
a download's parts written from the buffers its GETs filled, at their offsets.

A download lands under a temporary name beside its final one (`.NAME.s3dlio-ray-XXXX`) and is
renamed into place only once whole and verified, so no final name ever holds a half-written
file; one that fails is removed. Reads and writes of a part at least `THREAD_BYTES` long go
through a thread (the GIL is released while the kernel copies), so the event loop keeps serving
the other transfers; smaller ones are done inline, where a thread hop would cost more than the
copy (BENCHMARKS.md, file transfers).
"""

from __future__ import annotations

import asyncio
import errno
import os
import secrets
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

from s3dlio_ray._internal.model.errors import S3DlioRayError

THREAD_BYTES = 256 * 1024

FULL = (errno.ENOSPC, errno.EFBIG, errno.EDQUOT, errno.EROFS)
"""Errors every further write would meet too: the copy stops."""


class FileError(S3DlioRayError):
    """A file that cannot be read or written; `fatal` when no later one could be either."""

    def __init__(self, message: str, fatal: bool = False) -> None:
        super().__init__(message)
        self.fatal = fatal


def _failed(path: Path, doing: str, exc: OSError) -> FileError:
    reason = exc.strerror or str(exc)
    return FileError(f"{path}: cannot {doing}: {reason}", exc.errno in FULL)


async def _maybe_in_thread(length: int, call: Callable[..., Any], *args: Any) -> Any:
    if length >= THREAD_BYTES:
        return await asyncio.to_thread(call, *args)
    return call(*args)


class SourceFile:
    """A local file an upload reads, part by part."""

    def __init__(self, path: Path, size: int) -> None:
        self.path = path
        self.size = size
        try:
            self._fd = os.open(path, os.O_RDONLY)
        except OSError as exc:
            raise _failed(path, "read it", exc) from None

    async def read(self, offset: int, length: int) -> bytearray:
        """The part's bytes, in a buffer of their own (the request sends it as it is)."""
        buffer = bytearray(length)
        try:
            got = await _maybe_in_thread(length, os.preadv, self._fd, [buffer], offset)
        except OSError as exc:
            raise _failed(self.path, "read it", exc) from None
        if got != length:
            raise FileError(
                f"{self.path}: changed while it was copied ({got} of {length} bytes at offset "
                f"{offset}; it was {self.size} bytes when listed)"
            )
        return buffer

    async def crc32(self, piece: int = 8 * 1024 * 1024) -> int:
        """The whole file's CRC32 (what `sync` compares with the destination's)."""
        checksum = 0
        for offset in range(0, self.size, piece):
            checksum = zlib.crc32(await self.read(offset, min(piece, self.size - offset)), checksum)
        return checksum

    def __enter__(self) -> SourceFile:
        return self

    def __exit__(self, *exc: object) -> None:
        os.close(self._fd)


class TargetFile:
    """A local file a download writes: under a temporary name until `commit`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._temporary = path.parent / f".{path.name}.s3dlio-ray-{secrets.token_hex(4)}"
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self._fd = os.open(self._temporary, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
        except (FileExistsError, NotADirectoryError):
            raise FileError(
                f"{path}: cannot write it: a file stands where a folder of its path should be"
            ) from None
        except OSError as exc:
            raise _failed(path, "write it", exc) from None
        self._open = True

    async def write(self, offset: int, data: memoryview) -> None:
        try:
            written = await _maybe_in_thread(len(data), os.pwrite, self._fd, data, offset)
            while written < len(data):
                written += os.pwrite(self._fd, data[written:], offset + written)
        except OSError as exc:
            raise _failed(self.path, "write it", exc) from None

    def commit(self) -> None:
        """Whole and verified: into place under its final name (over an older file there)."""
        self._close()
        try:
            if self.path.is_dir():
                raise IsADirectoryError(errno.EISDIR, "a folder has its name")
            os.replace(self._temporary, self.path)
        except OSError as exc:
            self.discard()
            raise _failed(self.path, "write it", exc) from None

    def discard(self) -> None:
        """Not to be kept: the temporary file goes."""
        self._close()
        self._temporary.unlink(missing_ok=True)

    def _close(self) -> None:
        if self._open:
            self._open = False
            os.close(self._fd)

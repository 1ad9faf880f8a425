"""What a run writes: object content a reader can check without a copy.

Content is a function of (seed, key): a 32-byte identity (SHA-256 of seed and key) followed by a
window into a 4 MiB random pool that starts at an offset derived from that identity. Writers send
memoryviews of the pool (no per-object generation cost); readers compare with memcmp speed. A
wrong object, a stale object, a shifted or a flipped byte all fail verification.
"""

from __future__ import annotations

import functools
import hashlib
import random
from dataclasses import dataclass

from s3dlio_ray._internal.model.errors import S3DlioRayError

POOL_SIZE = 4 * 1024 * 1024
IDENTITY_SIZE = 32


class VerificationError(S3DlioRayError):
    """An object read back is not what the run wrote."""


@dataclass(frozen=True)
class _Layout:
    identity: bytes
    pool_offset: int


@functools.lru_cache(maxsize=2)
def _doubled_pool(seed: int) -> bytes:
    """The seed's random pool twice over (a window may wrap), made once per process for the
    shares that follow one another: 8 MiB of random bytes cost a share of 5,000 small requests
    2-3 us each."""
    pool = random.Random(seed).randbytes(POOL_SIZE)
    return pool + pool


class ObjectData:
    """Deterministic object content for one seed."""

    def __init__(self, seed: int) -> None:
        self.seed = seed
        self._pool2 = _doubled_pool(seed)
        self._view = memoryview(self._pool2)

    def _layout(self, key: str) -> _Layout:
        identity = hashlib.sha256(f"{self.seed}\0{key}".encode()).digest()
        return _Layout(identity, int.from_bytes(identity[:8], "little") % POOL_SIZE)

    def _spans(self, key: str, offset: int, length: int) -> list[tuple[bytes, int, int]]:
        """(source, start, length) spans that together are bytes [offset, offset + length)."""
        layout = self._layout(key)
        spans: list[tuple[bytes, int, int]] = []
        end = offset + length
        if offset < IDENTITY_SIZE:
            head_end = min(end, IDENTITY_SIZE)
            spans.append((layout.identity, offset, head_end - offset))
            offset = head_end
        while offset < end:
            start = (layout.pool_offset + offset) % POOL_SIZE
            take = min(POOL_SIZE, end - offset)
            spans.append((self._pool2, start, take))
            offset += take
        return spans

    def segments(self, key: str, offset: int, length: int) -> list[memoryview]:
        """Zero-copy views that together are bytes [offset, offset + length) of the object."""
        return [
            memoryview(source)[start : start + n]
            for source, start, n in self._spans(key, offset, length)
        ]

    def content(self, key: str, size: int) -> bytes:
        """The whole object as bytes (for tests and small objects)."""
        return b"".join(self.segments(key, 0, size))

    def verify(self, key: str, body: memoryview, size: int, offset: int = 0) -> None:
        """Raise VerificationError unless `body` is exactly the `size` bytes from `offset` of
        the object written under `key` (the whole object by default)."""
        if len(body) != size:
            raise VerificationError(f"{key}: read {len(body)} bytes, expected {size}")
        position = 0
        for source, start, n in self._spans(key, offset, size):
            # bytes.startswith compares a buffer at an offset with memcmp and copies nothing.
            chunk = body[position : position + n]
            if not source.startswith(chunk, start):
                at = _first_difference(source, start, chunk)
                raise VerificationError(
                    f"{key}: byte {offset + position + at} differs from what was written "
                    f"(read 0x{chunk[at]:02x}, expected 0x{source[start + at]:02x})"
                )
            position += n


def _first_difference(source: bytes, start: int, chunk: memoryview) -> int:
    """The first index where `chunk` differs from `source[start:]`, found by halving with memcmp
    (a failure path: it never runs on a good object)."""
    lo, hi = 0, len(chunk)
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if source.startswith(chunk[lo:mid], start + lo):
            lo = mid
        else:
            hi = mid
    return lo

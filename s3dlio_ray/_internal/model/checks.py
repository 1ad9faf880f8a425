"""How an object read back is checked, and which check each one passed.

An object this run generated is compared byte for byte with its deterministic content. One it
did not (existing data) is checked as far as the store allows: against a full-object checksum
the store returns (GET with `x-amz-checksum-mode: ENABLED`), else against its ETag when that is
the body's MD5 (a single-part upload, no `-N` suffix, not SSE-KMS), else for its length. The
check names are what the result counts: content, checksum-ALGORITHM, etag-md5, length.
"""

from __future__ import annotations

import base64
import hashlib
import threading
import zlib
from collections.abc import Callable, Mapping

from s3dlio_ray._internal.model.content import ObjectData, VerificationError

CHECKSUM_MODE = {"x-amz-checksum-mode": "ENABLED"}
"""Asks the store for the object's stored checksum with a GET."""


def _crc32(body: memoryview) -> bytes:
    return zlib.crc32(body).to_bytes(4, "big")


def _digest(name: str) -> Callable[[memoryview], bytes]:
    return lambda body: hashlib.new(name, body).digest()


CHECKSUMS: dict[str, Callable[[memoryview], bytes]] = {
    "sha256": _digest("sha256"),
    "sha1": _digest("sha1"),
    "crc32": _crc32,
}
"""The full-object checksums the standard library computes, strongest first. CRC32C and
CRC64NVME need a native library; objects stored with only those get the ETag or length check."""


def integrity_check(key: str, size: int, body: memoryview, headers: Mapping[str, str]) -> str:
    """Check an object this run did not generate (`size` -1: not known); answer the check it
    passed, or raise VerificationError naming what differs."""
    if size >= 0 and len(body) != size:
        raise VerificationError(f"{key}: read {len(body)} bytes, the listing says {size}")
    composite = headers.get("x-amz-checksum-type", "FULL_OBJECT").upper() == "COMPOSITE"
    for name, compute in CHECKSUMS.items():
        stored = headers.get(f"x-amz-checksum-{name}")
        if stored and not composite and "-" not in stored:
            actual = base64.b64encode(compute(body)).decode()
            if actual != stored:
                raise VerificationError(f"{key}: {name} {actual} differs from the stored {stored}")
            return f"checksum-{name}"
    etag = headers.get("etag", "").strip('"')
    kms = headers.get("x-amz-server-side-encryption", "") == "aws:kms"
    if len(etag) == 32 and "-" not in etag and not kms:
        actual = hashlib.md5(body, usedforsecurity=False).hexdigest()
        if actual != etag.lower():
            raise VerificationError(f"{key}: MD5 {actual} differs from the ETag {etag}")
        return "etag-md5"
    return "length" if size >= 0 else "none"


class ReadCheck:
    """Checks objects read back, from tasks or threads, and counts the outcomes.

    `generated(key)` says whether this run's seed made the object (its content is then known
    byte for byte); every other object gets `integrity_check`.
    """

    def __init__(self, data: ObjectData, generated: Callable[[str], bool]) -> None:
        self._data = data
        self._generated = generated
        self._lock = threading.Lock()
        self.verified = 0
        self.failures = 0
        self.checks: dict[str, int] = {}

    def check_span(self, key: str, offset: int, length: int, body: memoryview) -> None:
        """Check `length` bytes read from `offset` of the object: its content when this run's
        seed made it, else their count (a stored checksum covers the whole object only)."""

        def run() -> str:
            if self._generated(key):
                self._data.verify(key, body, length, offset)
                return "content"
            if len(body) != length:
                raise VerificationError(f"{key}: read {len(body)} bytes at {offset}, not {length}")
            return "length"

        self._count(run)

    def check(self, key: str, size: int, body: memoryview, headers: Mapping[str, str]) -> None:
        def run() -> str:
            if self._generated(key):
                self._data.verify(key, body, size)
                return "content"
            return integrity_check(key, size, body, headers)

        self._count(run)

    def _count(self, run: Callable[[], str]) -> None:
        """Run one check and count its outcome: failed, or passed by the check it names."""
        try:
            kind = run()
        except VerificationError:
            with self._lock:
                self.failures += 1
            raise
        with self._lock:
            self.verified += 1
            self.checks[kind] = self.checks.get(kind, 0) + 1

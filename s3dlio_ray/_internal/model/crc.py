"""CRC-32 (the one zlib computes, S3's `CRC32` checksum) of a whole file from its parts' CRCs.

A file moves as parts read or written concurrently, each checksummed in the pass that moves it;
the whole file's CRC is then combined from the parts' without reading a byte again. Python's
zlib has no crc32_combine, so this is zlib's algorithm: appending n bytes to a message is a
linear map of its CRC over GF(2), a 32x32 bit matrix, here cached per length (a transfer's parts
have one or two lengths), so a combine costs 32 XORs. Pure; zlib.crc32 is its test oracle.
"""

from __future__ import annotations

import base64
import zlib
from collections.abc import Iterable, Sequence
from functools import lru_cache

_POLYNOMIAL = 0xEDB88320


def _times(matrix: Sequence[int], vector: int) -> int:
    total, row = 0, 0
    while vector:
        if vector & 1:
            total ^= matrix[row]
        vector >>= 1
        row += 1
    return total


def _square(matrix: Sequence[int]) -> tuple[int, ...]:
    return tuple(_times(matrix, matrix[row]) for row in range(32))


@lru_cache(maxsize=64)
def _appending(length: int) -> tuple[int, ...]:
    """The map a CRC goes through when `length` zero bytes are appended."""
    one_bit = (_POLYNOMIAL, *(1 << row for row in range(31)))
    power = _square(_square(_square(one_bit)))
    result: tuple[int, ...] | None = None
    while length:
        if length & 1:
            result = power if result is None else tuple(_times(power, row) for row in result)
        length >>= 1
        if length:
            power = _square(power)
    assert result is not None
    return result


def combine(first: int, second: int, second_length: int) -> int:
    """The CRC of A + B from CRC(A), CRC(B) and len(B)."""
    if second_length <= 0:
        return first
    return _times(_appending(second_length), first) ^ second


def of(crcs: Iterable[int], ranges: Iterable[tuple[int, int]]) -> int:
    """The CRC of a whole from its parts' CRCs and their (offset, length) ranges, in order."""
    total = 0
    for crc, (_, length) in zip(crcs, ranges, strict=True):
        total = combine(total, crc, length)
    return total


def of_buffers(buffers: Iterable[bytes | bytearray | memoryview], start: int = 0) -> int:
    crc = start
    for buffer in buffers:
        crc = zlib.crc32(buffer, crc)
    return crc


def header(crc: int) -> str:
    """As S3's x-amz-checksum-crc32 carries it: the four bytes big-endian, base64."""
    return base64.b64encode(crc.to_bytes(4, "big")).decode()


def from_header(value: str) -> int | None:
    """A full-object x-amz-checksum-crc32; None for a composite one (`...-N`, of parts)."""
    if "-" in value:
        return None
    return int.from_bytes(base64.b64decode(value), "big")


def composite(crcs: Sequence[int]) -> str:
    """A multipart object's COMPOSITE x-amz-checksum-crc32, as a store that keeps its parts'
    checksums answers it: the CRC32 of the parts' CRC32s (four bytes each, in order), `-PARTS`."""
    joined = b"".join(part.to_bytes(4, "big") for part in crcs)
    return f"{header(zlib.crc32(joined))}-{len(crcs)}"

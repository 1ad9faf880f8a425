"""Multipart part sizing under S3's limits."""

from __future__ import annotations

from s3dlio_ray._internal.model.errors import S3DlioRayError

MIB = 1024 * 1024
GIB = 1024 * MIB
TIB = 1024 * GIB

DEFAULT_PART_SIZE = 10 * MIB
MIN_PART_SIZE = 5 * MIB
MAX_PART_SIZE = 5 * GIB
MAX_PARTS = 10_000
MAX_OBJECT_SIZE = 5 * TIB
DEFAULT_FAST_PATH_MAX = MIB
"""Objects up to this size go by the small-request path unless a run says otherwise: one
request each, well under the smallest part."""


class ObjectTooLargeError(S3DlioRayError):
    """S3 cannot hold an object of this size."""


DEFAULT_FAST_PATH_MAX = 1024 * 1024
"""Objects up to this size go by the small-request path unless a run says otherwise: one
request each, well under the smallest part."""


def calculate_optimal_part_size(object_size: int, target: int = DEFAULT_PART_SIZE) -> int:
    """Part size closest to `target` that S3 accepts for an object of `object_size` bytes.

    The target is clamped to 5 MiB..5 GiB, then grown (rounded up to a whole MiB) until the
    object fits in 10,000 parts.
    """
    if object_size < 0:
        raise ValueError(f"object size must be >= 0, got {object_size}")
    if object_size > MAX_OBJECT_SIZE:
        raise ObjectTooLargeError(
            f"object of {object_size} bytes exceeds S3's 5 TiB object limit "
            f"({MAX_OBJECT_SIZE} bytes); split it into several objects"
        )
    part = min(max(target, MIN_PART_SIZE), MAX_PART_SIZE)
    if object_size > part * MAX_PARTS:
        needed = -(-object_size // MAX_PARTS)
        part = min(-(-needed // MIB) * MIB, MAX_PART_SIZE)
    return part


def part_count(object_size: int, part_size: int) -> int:
    """Number of parts of `part_size` bytes (the last may be shorter); an empty object has one."""
    return max(1, -(-object_size // part_size))


def part_ranges(object_size: int, part_size: int) -> list[tuple[int, int]]:
    """(offset, length) of every part, in order."""
    return [
        (offset, min(part_size, object_size - offset))
        for offset in range(0, max(object_size, 1), part_size)
    ]

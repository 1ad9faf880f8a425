"""Which actor does which keys: every key exactly once, shares differing by at most one."""

from __future__ import annotations

from collections.abc import Sequence


def shard(keys: Sequence[str], parts: int) -> list[Sequence[str]]:
    """Split `keys` into `parts` contiguous shares, in order; later shares are never larger.
    Shares are slices, so a KeyRange's shares are index ranges: they pickle small."""
    if parts < 1:
        raise ValueError(f"need at least one share, got {parts}")
    size, extra = divmod(len(keys), parts)
    shares, start = [], 0
    for index in range(parts):
        end = start + size + (1 if index < extra else 0)
        shares.append(keys[start:end])
        start = end
    return shares

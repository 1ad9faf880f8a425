"""Byte sizes as people write them: 1048576, "10MiB", "10 MB", "4k", "1.5 GB".

k, M, G and T are powers of 1000; Ki, Mi, Gi and Ti powers of 1024; a trailing B is optional.
The settings and the rate limits both read sizes through here; the summaries print rates and
sizes in the unit a person chose (`RateUnit`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


def parse_size(text: str | int) -> int:
    """Bytes from an integer or a number with a unit; ValueError for anything else."""
    if isinstance(text, bool):
        raise ValueError("a size, not a boolean")
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    unit = (unit or "").lower().rstrip("b")
    return int(float(number) * _UNITS[unit])


@dataclass(frozen=True)
class RateUnit:
    """How the summaries print throughput and sizes: decimal (GB/s, MB/s) or binary (GiB/s,
    MiB/s). Result files always hold bytes and decimal GB/s; only what a person reads
    changes."""

    name: str
    scale: float

    @property
    def binary(self) -> bool:
        return "i" in self.name

    def rate(self, bytes_per_s: float) -> str:
        """`1.349` in GB/s, `1349.3` in MB/s: three significant decimals where they matter."""
        value = bytes_per_s / self.scale
        return f"{value:.3f}" if self.scale >= 1e9 else f"{value:.1f}"

    def size(self, nbytes: float) -> str:
        """`1.05 GB`, `100 MiB`, `512 B`: the largest unit the size reaches, in this family."""
        step = 1024 if self.binary else 1000
        suffixes = ("KiB", "MiB", "GiB", "TiB") if self.binary else ("kB", "MB", "GB", "TB")
        if nbytes < step:
            return f"{nbytes:.0f} B"
        value, index = nbytes / step, 0
        while value >= step and index < len(suffixes) - 1:
            value, index = value / step, index + 1
        suffix = suffixes[index]
        return f"{value:.3g} {suffix}" if value < 100 else f"{value:.0f} {suffix}"


RATE_UNITS = {"GB/s": 1e9, "MB/s": 1e6, "GiB/s": 1024**3, "MiB/s": 1024**2}
UNIT_NAMES = {"decimal": "GB/s", "binary": "GiB/s"}
"""`--units decimal` and `--units binary`: the GB/s families by name."""


def rate_unit(name: str) -> RateUnit:
    """GB/s, MB/s, GiB/s or MiB/s (any case), decimal or binary; ValueError for anything else."""
    named = UNIT_NAMES.get(name.lower(), name)
    for unit, scale in RATE_UNITS.items():
        if unit.lower() == named.lower():
            return RateUnit(unit, scale)
    allowed = ", ".join([*RATE_UNITS, *UNIT_NAMES])
    raise ValueError(f"expected one of {allowed}")


GB_PER_S = rate_unit("GB/s")

"""Rate limits: a cap in operations or bytes per second, and the pacer that keeps an engine to it.

A cluster's cap is divided evenly among the engines that run the phase. The pacer is a virtual
clock (GCRA): each operation books `cost / rate` seconds after the previous booking; an operation
whose booking lies in the future waits for it. Idle time earns at most `burst_s` of credit, so a
pause is not followed by a flood.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from s3dlio_ray._internal.model.units import parse_size

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(ops|[kmgt]?i?b)\s*/\s*s\s*$", re.IGNORECASE)


@dataclass(frozen=True)
class RateLimit:
    """At most `per_s` operations (unit "ops") or bytes (unit "bytes") per second."""

    unit: str
    per_s: float

    @classmethod
    def parse(cls, text: str) -> RateLimit:
        """From "500 ops/s", "1.5 GB/s", "200MiB/s"."""
        match = _RATE.match(text)
        if not match:
            raise ValueError("expected a rate such as 500 ops/s, 1.5 GB/s or 200 MiB/s")
        number, unit = float(match.group(1)), match.group(2).lower()
        if number <= 0:
            raise ValueError("a rate limit must be above 0")
        if unit == "ops":
            return cls("ops", number)
        return cls("bytes", float(parse_size(f"{match.group(1)}{unit}")))

    def share(self, engines: int) -> RateLimit:
        return RateLimit(self.unit, self.per_s / max(1, engines))

    def describe(self) -> str:
        return f"{self.per_s:g} ops/s" if self.unit == "ops" else f"{self.per_s / 1e9:g} GB/s"


class Pacer:
    """When the next operation may start, given what it costs (1 for ops, its bytes for bytes)."""

    def __init__(self, limit: RateLimit, burst_s: float = 0.05) -> None:
        self.limit = limit
        self._burst = burst_s
        self._next: float | None = None

    def delay(self, cost: int, now: float) -> float:
        """Seconds to wait before starting an operation of `cost`; books it."""
        units = 1 if self.limit.unit == "ops" else cost
        start = now - self._burst if self._next is None else max(self._next, now - self._burst)
        self._next = start + units / self.limit.per_s
        return max(0.0, start - now)

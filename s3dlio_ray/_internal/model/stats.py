"""Mergeable statistics: counters and log-bucketed latency histograms.

Histograms use the same fixed buckets everywhere (8 per power of two of microseconds, so a
percentile is within 9% of the true value), so actor, node and cluster views merge by adding
counts, never by averaging percentiles.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, replace

SUB_BUCKETS = 8
BUCKETS = 1 + 40 * SUB_BUCKETS


def bucket_index(seconds: float) -> int:
    micros = seconds * 1e6
    if micros < 1.0:
        return 0
    return min(BUCKETS - 1, int(math.log2(micros) * SUB_BUCKETS) + 1)


def bucket_upper_bound(index: int) -> float:
    """Largest latency in seconds that falls in bucket `index`."""
    return 2.0 ** (index / SUB_BUCKETS) / 1e6


@dataclass
class LatencyHistogram:
    counts: list[int] = field(default_factory=lambda: [0] * BUCKETS)
    count: int = 0
    total_s: float = 0.0
    min_s: float = math.inf
    max_s: float = 0.0

    def record(self, seconds: float) -> None:
        self.counts[bucket_index(seconds)] += 1
        self.count += 1
        self.total_s += seconds
        self.min_s = min(self.min_s, seconds)
        self.max_s = max(self.max_s, seconds)

    def copy(self) -> LatencyHistogram:
        return replace(self, counts=self.counts.copy())

    def merge(self, other: LatencyHistogram) -> None:
        self.counts = [a + b for a, b in zip(self.counts, other.counts, strict=True)]
        self.count += other.count
        self.total_s += other.total_s
        self.min_s = min(self.min_s, other.min_s)
        self.max_s = max(self.max_s, other.max_s)

    def since(self, earlier: LatencyHistogram) -> LatencyHistogram:
        """What was recorded after `earlier` (a previous state of this same histogram)."""
        return LatencyHistogram(
            [a - b for a, b in zip(self.counts, earlier.counts, strict=True)],
            self.count - earlier.count,
            self.total_s - earlier.total_s,
            self.min_s,
            self.max_s,
        )

    def percentile(self, q: float) -> float:
        """Latency in seconds at quantile q (0..1); 0.0 for an empty histogram."""
        if self.count == 0:
            return 0.0
        rank = max(1, math.ceil(q * self.count))
        seen = 0
        for index, n in enumerate(self.counts):
            seen += n
            if seen >= rank:
                return min(max(bucket_upper_bound(index), self.min_s), self.max_s)
        return self.max_s

    def summary(self) -> dict[str, float]:
        return {
            "p50_s": self.percentile(0.50),
            "p90_s": self.percentile(0.90),
            "p99_s": self.percentile(0.99),
            "max_s": self.max_s,
            "mean_s": self.total_s / self.count if self.count else 0.0,
        }

    def to_dict(self) -> dict[str, object]:
        return {
            "buckets": {str(i): n for i, n in enumerate(self.counts) if n},
            "count": self.count,
            "total_s": self.total_s,
            "min_s": self.min_s if self.count else 0.0,
            "max_s": self.max_s,
        }

    @classmethod
    def from_dict(cls, data: dict) -> LatencyHistogram:
        hist = cls()
        for index, n in data["buckets"].items():
            hist.counts[int(index)] = int(n)
        hist.count = int(data["count"])
        hist.total_s = float(data["total_s"])
        hist.min_s = float(data["min_s"]) if hist.count else math.inf
        hist.max_s = float(data["max_s"])
        return hist


@dataclass
class OpStats:
    """What one operation kind did: counts, bytes and latencies; merges exactly."""

    ops: int = 0
    bytes: int = 0
    errors: int = 0
    retries: int = 0
    latency: LatencyHistogram = field(default_factory=LatencyHistogram)
    ttfb: LatencyHistogram = field(default_factory=LatencyHistogram)

    def record(
        self, nbytes: int, latency_s: float, ttfb_s: float | None = None, objects: int = 1
    ) -> None:
        """One request's outcome; `objects`: how many objects it covered (a DeleteObjects
        batch, a LIST page), counted in `ops` while its latency is one sample."""
        self.ops += objects
        self.bytes += nbytes
        self.latency.record(latency_s)
        if ttfb_s is not None:
            self.ttfb.record(ttfb_s)

    def copy(self) -> OpStats:
        """An independent copy (a snapshot of live statistics; 50x cheaper than deepcopy)."""
        return replace(self, latency=self.latency.copy(), ttfb=self.ttfb.copy())

    def merge(self, other: OpStats) -> None:
        self.ops += other.ops
        self.bytes += other.bytes
        self.errors += other.errors
        self.retries += other.retries
        self.latency.merge(other.latency)
        self.ttfb.merge(other.ttfb)

    def since(self, earlier: OpStats) -> OpStats:
        """What happened after `earlier` (a previous state of these same statistics)."""
        return OpStats(
            self.ops - earlier.ops,
            self.bytes - earlier.bytes,
            self.errors - earlier.errors,
            self.retries - earlier.retries,
            self.latency.since(earlier.latency),
            self.ttfb.since(earlier.ttfb),
        )

    def to_dict(self) -> dict[str, object]:
        return {
            "ops": self.ops,
            "bytes": self.bytes,
            "errors": self.errors,
            "retries": self.retries,
            "latency": self.latency.to_dict(),
            "ttfb": self.ttfb.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict) -> OpStats:
        return cls(
            ops=int(data["ops"]),
            bytes=int(data["bytes"]),
            errors=int(data["errors"]),
            retries=int(data["retries"]),
            latency=LatencyHistogram.from_dict(data["latency"]),
            ttfb=LatencyHistogram.from_dict(data["ttfb"]),
        )

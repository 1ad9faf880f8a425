"""Object sizes: one fixed size, or a distribution between bounds, decided per key.

A key's size is a pure function of the key and the distribution, so every actor, the GET that
verifies it and a later configuration of the same run agree on it without being told. Sizes are
exact byte counts: nothing is rounded up to a block, so a 100-byte object is 100 bytes.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass

DISTRIBUTIONS = ("fixed", "uniform", "log-uniform")


@dataclass(frozen=True)
class ObjectSizes:
    """`fixed` uses `minimum`; `uniform` and `log-uniform` draw from minimum..maximum inclusive."""

    distribution: str = "fixed"
    minimum: int = 0
    maximum: int = 0

    def __post_init__(self) -> None:
        if self.distribution not in DISTRIBUTIONS:
            raise ValueError(f"distribution must be one of {', '.join(DISTRIBUTIONS)}")
        if self.minimum < 0:
            raise ValueError("sizes must be >= 0")
        if self.distribution != "fixed" and self.maximum < self.minimum:
            raise ValueError(f"max ({self.maximum}) must not be less than min ({self.minimum})")
        if self.distribution == "log-uniform" and self.minimum < 1:
            raise ValueError("log-uniform needs min >= 1 byte")

    @classmethod
    def fixed(cls, size: int) -> ObjectSizes:
        return cls("fixed", size, size)

    @property
    def largest(self) -> int:
        return self.minimum if self.distribution == "fixed" else self.maximum

    def of(self, key: str) -> int:
        """The size of the object under `key`."""
        if self.distribution == "fixed" or self.minimum == self.maximum:
            return self.minimum
        digest = hashlib.blake2b(key.encode(), digest_size=8, person=b"s3dlio-size").digest()
        u = int.from_bytes(digest, "little") / 2**64
        if self.distribution == "uniform":
            return self.minimum + math.floor(u * (self.maximum - self.minimum + 1))
        low, high = math.log(self.minimum), math.log(self.maximum + 1)
        return min(self.maximum, math.floor(math.exp(low + u * (high - low))))

    def describe(self) -> str:
        """For the summary and the run-info metric: "10485760", "log-uniform:4096..1048576"."""
        if self.distribution == "fixed":
            return str(self.minimum)
        return f"{self.distribution}:{self.minimum}..{self.maximum}"

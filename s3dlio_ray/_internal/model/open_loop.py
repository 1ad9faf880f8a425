"""Open-loop timing: operations issued when they are due, whether or not earlier ones finished,
and what each one's three times say.

A closed-loop tester starts a request when an earlier one ends, so a slow store slows the
tester and the latency it reports leaves out the time requests would have waited (coordinated
omission). Issued on a schedule (a replayed log's, or an offered load's arrivals), each
operation has a lateness (sent vs due: the client fell behind), a service time (sent to
done: the store) and a response time (due to done: what a user of the store waited).
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

from s3dlio_ray._internal.model.stats import LatencyHistogram

BEHIND_S = 0.010
"""An operation sent more than this after it was due fell behind its schedule."""


@dataclass(frozen=True)
class Arrival:
    """An offered load: `per_s` operations a second over the whole cluster, evenly spaced
    (constant) or as a Poisson process (exponential gaps, the arrivals of many independent
    users)."""

    kind: str
    per_s: float

    KINDS = ("constant", "poisson")

    @classmethod
    def parse(cls, value: object) -> Arrival:
        """From `{constant: 200}` or `{poisson: "200/s"}`."""
        shape = "expected {constant: N} or {poisson: N}: N operations a second (N/s)"
        if not isinstance(value, Mapping) or len(value) != 1:
            raise ValueError(shape)
        ((kind, rate),) = value.items()
        if kind not in cls.KINDS:
            raise ValueError(f"{kind!r}: {shape}")
        text = str(rate).strip().removesuffix("/s").strip()
        try:
            per_s = float(text)
        except ValueError:
            raise ValueError(f"{rate!r}: {shape}") from None
        if not per_s > 0 or math.isinf(per_s):
            raise ValueError(f"{rate!r}: a rate above 0 a second")
        return cls(kind, per_s)

    def share(self, engines: int) -> Arrival:
        return Arrival(self.kind, self.per_s / max(1, engines))

    def describe(self) -> str:
        return f"{self.kind} {self.per_s:g}/s"

    def to_dict(self) -> dict[str, float]:
        return {self.kind: self.per_s}


class Arrivals:
    """One engine's due times for `arrival` (its share of the load), seconds after `origin`
    (a perf_counter time); an engine's constant arrivals are offset by `phase` of a gap so
    engines do not arrive together."""

    def __init__(
        self, arrival: Arrival, seed: int, phase: float = 0.0, origin: float = 0.0
    ) -> None:
        self.origin = origin
        self._arrival = arrival
        self._rng = random.Random(seed)
        self._next = phase / arrival.per_s if arrival.kind == "constant" else 0.0

    def due(self, item: object) -> float:
        rate = self._arrival.per_s
        if self._arrival.kind == "poisson":
            self._next += self._rng.expovariate(rate)
            return self._next
        due, self._next = self._next, self._next + 1.0 / rate
        return due


def tally(per_second: list[int], second: int) -> None:
    """Count one request in `second` of a per-second list, growing it as needed."""
    per_second.extend([0] * (second + 1 - len(per_second)))
    per_second[second] += 1


def rate_errors(scheduled: Sequence[int], sent: Sequence[int], least: int = 20) -> list[float]:
    """Each full second's sent count against its scheduled count, as a signed share of it
    (0.02: 2 % more sent than due), for seconds with at least `least` due; the schedule's
    last second (a part of one) is left out."""
    errors = []
    for second, due in enumerate(scheduled[:-1]):
        if due >= least:
            got = sent[second] if second < len(sent) else 0
            errors.append((got - due) / due)
    return errors


def _histograms(data: Mapping[str, dict]) -> dict[str, LatencyHistogram]:
    return {op: LatencyHistogram.from_dict(hist) for op, hist in data.items()}


@dataclass
class OpenLoopStats:
    """What a schedule's operations did, mergeable over shares: how many were sent and how
    many fell behind or waited for a free slot (the concurrency cap bit), lateness, service
    and response time per operation, and how many were sent in each second of the
    schedule."""

    sent: int = 0
    behind: int = 0
    capped: int = 0
    lateness: LatencyHistogram = field(default_factory=LatencyHistogram)
    service: dict[str, LatencyHistogram] = field(default_factory=dict)
    response: dict[str, LatencyHistogram] = field(default_factory=dict)
    sent_per_s: list[int] = field(default_factory=list)

    def record(self, op: str, late_s: float, service_s: float, second: int) -> None:
        late_s = max(0.0, late_s)
        self.sent += 1
        self.behind += late_s > BEHIND_S
        self.lateness.record(late_s)
        self.service.setdefault(op, LatencyHistogram()).record(service_s)
        self.response.setdefault(op, LatencyHistogram()).record(late_s + service_s)
        if second >= 0:
            tally(self.sent_per_s, second)

    def merge(self, other: OpenLoopStats) -> None:
        self.sent += other.sent
        self.behind += other.behind
        self.capped += other.capped
        self.lateness.merge(other.lateness)
        for mine, theirs in ((self.service, other.service), (self.response, other.response)):
            for op, hist in theirs.items():
                mine.setdefault(op, LatencyHistogram()).merge(hist)
        longer = max(len(self.sent_per_s), len(other.sent_per_s))
        self.sent_per_s = [
            (self.sent_per_s[i] if i < len(self.sent_per_s) else 0)
            + (other.sent_per_s[i] if i < len(other.sent_per_s) else 0)
            for i in range(longer)
        ]

    @property
    def behind_share(self) -> float:
        return self.behind / self.sent if self.sent else 0.0

    def to_dict(self) -> dict[str, object]:
        return {
            "sent": self.sent,
            "behind": self.behind,
            "behind_share": self.behind_share,
            "behind_s": BEHIND_S,
            "capped": self.capped,
            "lateness": self.lateness.to_dict(),
            "lateness_summary": self.lateness.summary(),
            "service": {op: h.to_dict() for op, h in sorted(self.service.items())},
            "response": {op: h.to_dict() for op, h in sorted(self.response.items())},
            "by_op": {
                op: {
                    "service": self.service[op].summary(),
                    "response": self.response[op].summary(),
                }
                for op in sorted(self.service)
            },
            "sent_per_s": list(self.sent_per_s),
        }

    @classmethod
    def from_dict(cls, data: dict) -> OpenLoopStats:
        return cls(
            int(data["sent"]),
            int(data["behind"]),
            int(data["capped"]),
            LatencyHistogram.from_dict(data["lateness"]),
            _histograms(data["service"]),
            _histograms(data["response"]),
            [int(n) for n in data["sent_per_s"]],
        )

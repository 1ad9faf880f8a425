"""Adaptive concurrency: how many requests to keep in flight, from measured aggregate throughput.

The controller is a hill climber with multiplicative back-off. It is fed one observation per
interval (the bytes and operations completed in it and whether the endpoint throttled), and
answers the in-flight limit to use next. A measurement spans at least `measure_intervals`
intervals, `min_ops` completed operations and `latency_windows` request latencies: with large
objects or a long round trip an interval may see none complete, or a whole wave at once, and no
completions is no information, not a throughput of zero. After a change the controller first lets
one latency (and `settle_intervals`) pass, so requests started under the old limit do not count.

It climbs geometrically while each step still buys `min_gain` more throughput, steps back to the
last limit that paid off once a step does not, and holds there. Every `probe_every` measurements
it probes, alternately upward (kept only if it buys `min_gain` more, so it follows an endpoint that
got faster) and downward (kept if it loses less than `min_gain`). The two tests are asymmetric on
purpose: on a flat, noisy endpoint an upward probe sometimes passes by chance, a downward one
usually passes, so the limit drifts to the smallest that delivers the throughput instead of
ratcheting up to the maximum (more requests in flight, more memory, longer latency, no gain).

While the engine's own CPU is the limit (`cpu_bound`: its process near a full core, or its
event loop waking late) the limit holds, neither climbing nor probing: more requests in flight
would only wait for the CPU, fewer would measure the CPU, not the store. `held_by` says so.

No step up is taken while requests wait `max_latency_ratio` times longer than at the lightest load
seen: that is queueing, not a pipe being filled. Throughput alone cannot see it where several
engines share one bottleneck (actors on one node, one endpoint): each engine's own rate rises when
it takes more of the bottleneck from the others, so all of them would climb to the maximum while
the sum stays flat. A far endpoint's long but steady round trip does not trip it.

Throttling (503 SlowDown, 5xx, timeouts) cuts the limit by `backoff` at once and lowers a ceiling
(halfway between the old and the new limit) that the climb respects, which recovers slowly while
the endpoint stays quiet.

In `Mode.CLUSTER` the driver's controller (tuning.cluster) assigns the limit; this one only cuts
it by `backoff` at once on throttling, until the driver's next assignment backs the whole
cluster off.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import Enum


class Mode(Enum):
    FIXED = "fixed"
    TARGET = "target"
    AUTO = "auto"
    CLUSTER = "cluster"


@dataclass(frozen=True)
class ConcurrencyPolicy:
    mode: Mode
    initial: int
    minimum: int = 8
    maximum: int = 256
    target_bytes_per_s: float | None = None
    growth: float = 1.5
    min_gain: float = 0.05
    max_latency_ratio: float = 2.0
    backoff: float = 0.5
    settle_intervals: int = 1
    measure_intervals: int = 2
    min_ops: int = 8
    latency_windows: float = 3.0
    probe_every: int = 10
    ceiling_recovery: int = 20

    def __post_init__(self) -> None:
        if not 1 <= self.minimum <= self.maximum:
            raise ValueError(f"need 1 <= minimum <= maximum, got {self.minimum}..{self.maximum}")
        if self.mode is Mode.TARGET and not self.target_bytes_per_s:
            raise ValueError("target mode needs target_bytes_per_s")


class ConcurrencyController:
    """Answers the in-flight limit for the next interval; never does I/O."""

    def __init__(self, policy: ConcurrencyPolicy) -> None:
        self.policy = policy
        if policy.mode is Mode.FIXED:
            self._limit = max(1, policy.initial)
        else:
            self._limit = min(max(policy.initial, policy.minimum), policy.maximum)
        self._ceiling = policy.maximum
        self._baseline: tuple[int, float] | None = None
        self._bytes = 0
        self._ops = 0
        self._seconds = 0.0
        self._intervals = 0
        self._skip = policy.settle_intervals
        self._skipped_s = 0.0
        self._holding = 0
        self._probe_down_next = False
        self._probing_down: tuple[int, float] | None = None
        self._quiet = 0
        self._latency = 0.0
        self._min_latency = math.inf
        self._cpu_bound = False
        self.held_by: str | None = None
        """`client-cpu` while the engine's CPU keeps the limit from climbing."""

    @property
    def limit(self) -> int:
        return self._limit

    def assign(self, limit: int) -> int:
        """The driver's ceiling (`Mode.CLUSTER`); answers the limit to use from now on."""
        self._limit = min(max(1, limit), self.policy.maximum)
        return self._limit

    def observe(
        self,
        nbytes: int,
        ops: int,
        interval_s: float,
        throttled: bool = False,
        latency_s: float = 0.0,
        cpu_bound: bool = False,
    ) -> int:
        """Take one interval's aggregate completions; return the limit to use from now on.

        `latency_s` is the recent mean request latency; 0 when unknown. `cpu_bound`: the
        engine's own CPU was the limit in the interval.
        """
        p = self.policy
        self._cpu_bound = cpu_bound
        if not cpu_bound:
            self.held_by = None
        if p.mode is Mode.FIXED:
            return self._limit
        if p.mode is Mode.CLUSTER:
            if throttled:
                self._limit = max(1, math.floor(self._limit * p.backoff))
            return self._limit
        if throttled:
            self._back_off()
            return self._limit
        self._recover_ceiling()
        if self._skip > 0 or self._skipped_s < latency_s:
            self._skip = max(0, self._skip - 1)
            self._skipped_s += interval_s
            return self._limit
        self._bytes += nbytes
        self._ops += ops
        self._seconds += interval_s
        self._intervals += 1
        if (
            self._intervals < p.measure_intervals
            or self._ops < p.min_ops
            or self._seconds < p.latency_windows * latency_s
        ):
            return self._limit
        if latency_s > 0:
            self._latency = latency_s
            self._min_latency = min(self._min_latency, latency_s)
        self._decide(self._bytes / self._seconds)
        return self._limit

    def _decide(self, rate: float) -> None:
        p = self.policy
        if self._cpu_bound:
            self.held_by = "client-cpu"
            self._baseline = (self._limit, rate)
            self._probing_down = None
            self._hold()
            return
        if p.target_bytes_per_s and rate >= p.target_bytes_per_s * (1 - p.min_gain):
            self._baseline = (self._limit, rate)
            self._hold()
            return
        if self._probing_down is not None:
            base_limit, base_rate = self._probing_down
            self._probing_down = None
            if rate >= base_rate * (1 - p.min_gain):
                self._baseline = (self._limit, rate)
            else:
                self._set(base_limit)
            self._hold()
            return
        if self._holding > 0:
            self._holding -= 1
            self._baseline = (self._limit, rate)
            if self._holding > 0:
                self._measure_again()
                return
            self._probe_down_next = not self._probe_down_next
            if self._probe_down_next and self._limit > p.minimum:
                self._step_down(rate)
            else:
                self._step_up()
            return
        if self._baseline is None or self._limit <= self._baseline[0]:
            self._baseline = (self._limit, rate)
            self._step_up()
            return
        base_limit, base_rate = self._baseline
        if rate >= base_rate * (1 + p.min_gain):
            self._baseline = (self._limit, rate)
            self._step_up()
        else:
            self._set(base_limit)
            self._hold()

    def _queueing(self) -> bool:
        """Requests wait `max_latency_ratio` times longer than at the lightest load seen: more
        in flight would only queue (at a bottleneck other engines share, it would only take
        their throughput: each engine's own rate rises, the sum does not)."""
        return self._latency > self.policy.max_latency_ratio * self._min_latency

    def _step_up(self) -> None:
        if self._queueing():
            self._hold()
            return
        grown = max(self._limit + 1, math.ceil(self._limit * self.policy.growth))
        new = min(grown, self._ceiling)
        if new <= self._limit:
            self._hold()
            return
        self._set(new)

    def _step_down(self, rate: float) -> None:
        self._probing_down = (self._limit, rate)
        self._set(max(self.policy.minimum, math.floor(self._limit / self.policy.growth)))

    def _hold(self) -> None:
        self._holding = self.policy.probe_every
        self._measure_again()

    def _back_off(self) -> None:
        p = self.policy
        self._ceiling = max(p.minimum, math.floor(self._limit * (1 + p.backoff) / 2))
        self._quiet = 0
        self._baseline = None
        self._probing_down = None
        self._holding = 0
        self._set(max(p.minimum, math.floor(self._limit * p.backoff)))

    def _recover_ceiling(self) -> None:
        p = self.policy
        if self._ceiling >= p.maximum:
            return
        self._quiet += 1
        if self._quiet >= p.ceiling_recovery:
            self._quiet = 0
            self._ceiling = min(p.maximum, math.ceil(self._ceiling * 1.1))

    def _set(self, limit: int) -> None:
        self._limit = limit
        self._measure_again()

    def _measure_again(self) -> None:
        self._bytes = self._ops = self._intervals = 0
        self._seconds = 0.0
        self._skip = self.policy.settle_intervals
        self._skipped_s = 0.0

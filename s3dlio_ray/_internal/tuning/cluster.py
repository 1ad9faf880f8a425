"""One concurrency controller for the whole cluster: the driver's.

Each actor's own controller (tuning.scheduler) climbs alone. Actors that share one bottleneck
(a gateway, a link, the endpoint's disks) each see their own rate rise when they take more of it
from the others, so all of them climb while the sum stays flat and the queues grow. The driver
sees every actor each second, so it steers the cluster as one flow: one window (requests in
flight across the cluster) split into a ceiling per actor.

- Bottleneck. By Little's law the cluster needs rate x the lightest latency seen (the
  bandwidth-delay product, BDP) requests in flight for its rate with no queue. While the latency
  stays within `grow_ratio` of that floor the window grows by `growth` (kept only if it buys
  `min_gain` more); once requests wait `drain_ratio` times the floor it drops to `headroom` x BDP;
  in between it holds. In flight stays below `drain_ratio` x BDP.
- The floor is the lightest latency of the last `floor_window` readings, and is re-measured: the
  window first halves while the rate holds (a start above the BDP would otherwise hide the
  floor), and every `probe_every` held readings it steps down by `growth`, kept if the rate holds.
- Target (`target_bytes_per_s`): every actor is paced to an even share of it, so the cluster
  never overshoots (a window alone cannot hold a rate: one request in flight per actor can be
  plenty), and the window only has to be large enough: it grows while the rate falls short, by
  at most what the shortfall asks, and the bottleneck rule still applies, so a target past the
  bottleneck settles on the bottleneck.
- Throttling (503 SlowDown, timeouts) anywhere cuts the window by `backoff` for every actor at
  once and lowers a ceiling, halfway between, that recovers while the endpoint stays quiet.
- Client CPU: while any actor reports its own CPU as its limit (`cpu_bound`), the window
  does not grow (more requests would only wait for that actor's CPU); `held_by` says so.
- Fair shares: by Little's law an actor's rate is its ceiling over its latency, so ceilings are
  split in proportion to each actor's latency (within `max_skew` of the mean), giving actors
  behind a slower path the same rate as the rest.

Pure: fed one reading per actor per interval, it answers the ceilings; it never does I/O.
"""

from __future__ import annotations

import math
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class ClusterPolicy:
    start_each: int = 8
    minimum_each: int = 1
    maximum_each: int = 256
    target_bytes_per_s: float | None = None
    growth: float = 1.5
    min_gain: float = 0.05
    grow_ratio: float = 1.25
    drain_ratio: float = 2.0
    headroom: float = 1.5
    backoff: float = 0.5
    settle: int = 1
    min_ops: int = 8
    probe_every: int = 10
    floor_window: int = 30
    ceiling_recovery: int = 20
    max_skew: float = 2.0

    def __post_init__(self) -> None:
        if not 1 <= self.minimum_each <= self.maximum_each:
            raise ValueError(
                f"need 1 <= minimum <= maximum, got {self.minimum_each}..{self.maximum_each}"
            )


@dataclass(frozen=True)
class ActorReading:
    """What one actor did in the last interval, as the driver gathered it."""

    ops: int
    """Requests completed."""
    nbytes: int
    latency_s: float
    """The completed requests' latencies, summed."""
    in_flight: int
    throttled: bool = False
    cpu_bound: bool = False
    """The actor's own CPU limited it in the interval (its process near a core, its loop late)."""


@dataclass(frozen=True)
class Steer:
    """What the driver tells one actor: its ceiling, and a byte rate to keep to (or None)."""

    ceiling: int
    bytes_per_s: float | None = None


class ClusterController:
    """Answers each actor's ceiling (requests in flight) for the next interval."""

    def __init__(self, policy: ClusterPolicy) -> None:
        self.policy = policy
        self.window = 0
        """Requests in flight allowed across the cluster; 0 until the first reading."""
        self._ceiling = math.inf
        self._quiet = 0
        self._skip = 0
        self._floors: deque[float] = deque(maxlen=policy.floor_window)
        self._descending = True
        self._probe: tuple[int, float] | None = None
        self._grew_from: tuple[int, float] | None = None
        self._held = 0
        self._cpu_bound = False
        self.held_by: str | None = None
        """`client-cpu` while an actor's CPU keeps the window from growing."""

    @property
    def floor_s(self) -> float:
        """The lightest mean latency of the recent readings (0 before any)."""
        return min(self._floors, default=0.0)

    def observe(self, readings: Mapping[str, ActorReading], interval_s: float) -> dict[str, Steer]:
        """Take one interval's readings of the running actors; answer how to steer each."""
        if not readings:
            return {}
        p = self.policy
        n = len(readings)
        if not self.window:
            self.window = n * p.start_each
        self.window = self._bounded(self.window, n)
        ops = sum(r.ops for r in readings.values())
        self._cpu_bound = any(r.cpu_bound for r in readings.values())
        if not self._cpu_bound:
            self.held_by = None
        if any(r.throttled for r in readings.values()):
            self._back_off(n)
        elif self._skip > 0:
            self._skip -= 1
        elif ops >= p.min_ops:
            self._recover_ceiling(n)
            nbytes = sum(r.nbytes for r in readings.values())
            latency = sum(r.latency_s for r in readings.values()) / ops
            self._floors.append(latency)
            rate = (nbytes or ops) / interval_s
            bdp = ops / interval_s * self.floor_s
            self._decide(n, rate, nbytes / interval_s if nbytes else None, latency, bdp)
        target = p.target_bytes_per_s
        pace = target / n if target else None
        return {name: Steer(c, pace) for name, c in self._shares(readings).items()}

    def _decide(
        self, n: int, rate: float, byte_rate: float | None, latency: float, bdp: float
    ) -> None:
        p = self.policy
        if self._probe is not None:
            base_window, base_rate = self._probe
            self._probe = None
            if rate >= base_rate * (1 - p.min_gain):
                if self._descending:
                    self._probe_down(n, rate, 2.0)
                return
            self._descending = False
            self._set(base_window, n)
            return
        if self._descending:
            self._probe_down(n, rate, 2.0)
            return
        if self._grew_from is not None:
            base_window, base_rate = self._grew_from
            self._grew_from = None
            if rate < base_rate * (1 + p.min_gain) and not self._below_target(byte_rate):
                self._set(base_window, n)
                return
        if latency > p.drain_ratio * self.floor_s:
            self._set(math.ceil(p.headroom * bdp), n)
            return
        target = p.target_bytes_per_s
        if target and byte_rate is not None and byte_rate >= target * (1 - p.min_gain):
            return
        if latency <= p.grow_ratio * self.floor_s:
            factor = p.growth
            if target and byte_rate:
                factor = min(factor, target / byte_rate)
            self._grow(n, rate, factor)
            return
        self._held += 1
        if self._held >= p.probe_every:
            self._probe_down(n, rate, p.growth)

    def _below_target(self, byte_rate: float | None) -> bool:
        """A step toward a target is kept even when it bought less than `min_gain`."""
        target = self.policy.target_bytes_per_s
        return bool(target and byte_rate is not None and byte_rate < target)

    def _grow(self, n: int, rate: float, factor: float) -> None:
        if self._cpu_bound:
            self.held_by = "client-cpu"
            return
        grown = min(max(self.window + 1, math.ceil(self.window * factor)), self._ceiling)
        if grown <= self.window:
            return
        self._grew_from = (self.window, rate)
        self._set(int(grown), n)

    def _probe_down(self, n: int, rate: float, factor: float) -> None:
        lower = self._bounded(math.floor(self.window / factor), n)
        if lower >= self.window:
            self._descending = False
            return
        self._probe = (self.window, rate)
        self._set(lower, n)

    def _back_off(self, n: int) -> None:
        p = self.policy
        self._ceiling = self._bounded(math.floor(self.window * (1 + p.backoff) / 2), n)
        self._quiet = 0
        self._descending = False
        self._probe = self._grew_from = None
        self._set(math.floor(self.window * p.backoff), n)

    def _recover_ceiling(self, n: int) -> None:
        if self._ceiling >= n * self.policy.maximum_each:
            return
        self._quiet += 1
        if self._quiet >= self.policy.ceiling_recovery:
            self._quiet = 0
            self._ceiling = math.ceil(self._ceiling * 1.1)

    def _set(self, window: int, n: int) -> None:
        self.window = self._bounded(window, n)
        self._skip = self.policy.settle
        self._held = 0

    def _bounded(self, window: float, n: int) -> int:
        p = self.policy
        return int(min(max(window, n * p.minimum_each), n * p.maximum_each))

    def _shares(self, readings: Mapping[str, ActorReading]) -> dict[str, int]:
        """The window split in proportion to each actor's latency, within `max_skew`."""
        p = self.policy
        latencies = {name: r.latency_s / r.ops for name, r in readings.items() if r.ops}
        mean = sum(latencies.values()) / len(latencies) if latencies else 0.0
        weights = {
            name: min(max(latencies.get(name, mean) / mean, 1 / p.max_skew), p.max_skew)
            if mean
            else 1.0
            for name in readings
        }
        total = sum(weights.values())
        return {
            name: min(max(round(self.window * w / total), p.minimum_each), p.maximum_each)
            for name, w in weights.items()
        }

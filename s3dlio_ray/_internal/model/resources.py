"""What the client's own resources did, second by second: the counters each actor reads of its
process and its node, and one node's figures over one interval, which the limit verdicts
(model.bottleneck) judge.

Every actor reads the same node-wide counters (CPU, cgroup quota, NICs); the driver keeps, per
node, the newest reading it has and takes differences between successive ones, so a node counts
once however many actors it has. A process's own CPU is counted per process (pid), across the
shares it runs.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class NicCounters:
    """One NIC's cumulative byte counters and its speed in bits per second (None: unknown, as
    on virtual NICs, unless the `nic_gbps` setting gave it)."""

    name: str
    rx_bytes: int
    tx_bytes: int
    speed_bps: float | None = None


@dataclass(frozen=True)
class MachineFloors:
    """What one core of the node does at best (storage.floors measures it): SHA-256 and an
    AEAD cipher in GB per CPU second, and CPU microseconds per bare loopback request."""

    sha256_gbps: float
    aead_gbps: float | None
    aead: str | None
    request_us: float

    def to_dict(self) -> dict[str, float | str | None]:
        return {
            "sha256_gbps": self.sha256_gbps,
            "aead_gbps": self.aead_gbps,
            "aead": self.aead,
            "request_us": self.request_us,
        }

    def describe(self) -> str:
        cipher = f", {self.aead} {self.aead_gbps:.2f} GB/s" if self.aead_gbps else ""
        return (
            f"a core hashes SHA-256 at {self.sha256_gbps:.2f} GB/s{cipher}, "
            f"a bare loopback request {self.request_us:.0f} us"
        )


@dataclass(frozen=True)
class HostReading:
    """One process's cumulative counters of itself and its node, read at `at_s` (the system's
    monotonic clock, the same for every process of a node)."""

    pid: int
    at_s: float
    process_cpu_s: float
    node_busy_s: float
    """CPU time the whole node spent busy (every CPU, every process)."""
    node_total_s: float
    """CPU time the whole node had (busy and idle, every CPU)."""
    capacity_cores: float
    """Cores the actors may use: the CPUs they may run on, less where a cgroup quota caps them."""
    quota_periods: int = 0
    quota_throttled: int = 0
    """The cgroup's CPU quota periods so far, and those in which the quota stopped it."""
    nics: tuple[NicCounters, ...] = ()
    """The NICs the engine's connections leave from."""
    floors: MachineFloors | None = None


def quota_throttled(before: tuple[int, int], now: tuple[int, int]) -> float | None:
    """The share of a cgroup's quota periods between two readings of (periods, throttled) in
    which the quota stopped it (None: no period passed)."""
    periods = now[0] - before[0]
    return (now[1] - before[1]) / periods if periods > 0 else None


@dataclass(frozen=True)
class NicSecond:
    """One NIC over one interval: bits per second each way, beside its speed."""

    name: str
    rx_bps: float
    tx_bps: float
    speed_bps: float | None

    @property
    def utilization(self) -> float | None:
        """The busier direction's share of the NIC's speed (None: speed unknown)."""
        if not self.speed_bps:
            return None
        return max(self.rx_bps, self.tx_bps) / self.speed_bps


@dataclass(frozen=True)
class NodeSecond:
    """One node's work and resources over one interval (about a second) of a phase."""

    node: str
    t_s: float
    interval_s: float
    bytes: int = 0
    requests: int = 0
    limit: int = 0
    in_flight: int = 0
    latency_p50_s: float | None = None
    ttfb_p50_s: float | None = None
    retries: int = 0
    throttles: int = 0
    actors_cpu: float | None = None
    """Cores the node's actors used together."""
    busiest_actor_cpu: float | None = None
    """The busiest actor's share of what one process can use (one core, or less under a quota)."""
    capacity_cores: float | None = None
    node_cpu: float | None = None
    """The share of the node's CPU busy, with every other process on it."""
    quota_throttled: float | None = None
    """The share of the cgroup's quota periods in which the quota stopped it."""
    loop_lag_s: float | None = None
    """How late the actors' event loops woke, on average: a busy loop answers late."""
    nics: tuple[NicSecond, ...] = ()

    @property
    def bytes_per_s(self) -> float:
        return self.bytes / self.interval_s if self.interval_s > 0 else 0.0

    @property
    def busiest_nic(self) -> NicSecond | None:
        """The NIC nearest its speed (or, speeds unknown, the one moving the most)."""
        return max(
            self.nics,
            key=lambda n: (n.utilization or 0.0, max(n.rx_bps, n.tx_bps)),
            default=None,
        )


@dataclass(frozen=True)
class ClientCost:
    """What the client itself spent on a phase: its actors' CPU per byte and per request, the
    cores a node's actors may use, and the node's floors."""

    cpu_s: float
    bytes: int
    requests: int
    capacity_cores: float | None = None
    floors: MachineFloors | None = None

    @classmethod
    def of(
        cls, seconds: Sequence[NodeSecond], floors: MachineFloors | None = None
    ) -> ClientCost | None:
        """From a phase's seconds (None: no CPU was measured)."""
        measured = [s for s in seconds if s.actors_cpu is not None]
        if not measured:
            return None
        capacities = [s.capacity_cores for s in measured if s.capacity_cores]
        return cls(
            sum((s.actors_cpu or 0.0) * s.interval_s for s in measured),
            sum(s.bytes for s in measured),
            sum(s.requests for s in measured),
            min(capacities) if capacities else None,
            floors,
        )

    @property
    def cpu_s_per_gb(self) -> float | None:
        return self.cpu_s / (self.bytes / 1e9) if self.bytes else None

    @property
    def us_per_request(self) -> float | None:
        return self.cpu_s / self.requests * 1e6 if self.requests else None

    @property
    def node_ceiling_gbps(self) -> float | None:
        """The most GB/s a node's CPU could move at this cost: its cores over CPU s per GB."""
        per_gb = self.cpu_s_per_gb
        return self.capacity_cores / per_gb if per_gb and self.capacity_cores else None

    def brief(self) -> str:
        """`0.50 CPU s/GB, 2000 CPU us/request: a client node (2 cores) can do at most 4 GB/s
        of this`: the cost without the floors."""
        parts = []
        if self.cpu_s_per_gb is not None:
            parts.append(f"{self.cpu_s_per_gb:.2f} CPU s/GB")
        if self.us_per_request is not None:
            parts.append(f"{self.us_per_request:.0f} CPU us/request")
        text = ", ".join(parts)
        ceiling = self.node_ceiling_gbps
        if ceiling is not None:
            text += (
                f": a client node ({self.capacity_cores:g} cores) can do at most "
                f"{ceiling:.3g} GB/s of this"
            )
        return text

    def describe(self) -> str:
        text = f"client cost {self.brief()}"
        if self.floors is not None:
            text += f" ({self.floors.describe()})"
        return text

    def to_dict(self) -> dict[str, Any]:
        return {
            "cpu_s": self.cpu_s,
            "bytes": self.bytes,
            "requests": self.requests,
            "cpu_s_per_gb": self.cpu_s_per_gb,
            "us_per_request": self.us_per_request,
            "capacity_cores": self.capacity_cores,
            "node_ceiling_gbps": self.node_ceiling_gbps,
            "floors": self.floors.to_dict() if self.floors else None,
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> ClientCost:
        floors = doc.get("floors")
        return cls(
            float(doc["cpu_s"] or 0.0),
            int(doc["bytes"] or 0),
            int(doc["requests"] or 0),
            doc.get("capacity_cores"),
            MachineFloors(**floors) if floors else None,
        )


@dataclass
class _Seen:
    reading: HostReading
    lag_s: float
    ticks: int


@dataclass
class ResourceTracker:
    """Per node, the differences between successive readings: CPU, quota, NICs, loop lag."""

    _processes: dict[tuple[str, int], _Seen] = field(default_factory=dict)
    _nodes: dict[str, HostReading] = field(default_factory=dict)
    _latest: dict[str, HostReading] = field(default_factory=dict)
    _cpu: dict[str, dict[int, tuple[float, float]]] = field(default_factory=dict)
    """Per node and process: CPU seconds and wall seconds between its readings so far."""
    _lag: dict[str, list[tuple[float, int]]] = field(default_factory=dict)
    floors: MachineFloors | None = None
    """The first node's floors that any reading carried."""

    def observe(
        self, node: str, reading: HostReading, lag_s: float, ticks: int, start: bool = False
    ) -> None:
        """One actor's reading, with its event loop's summed lateness over `ticks` wake-ups;
        `start`: taken as a share began, the baseline of its first second (what the process
        did between shares is no share's)."""
        key = (node, reading.pid)
        self._nodes.setdefault(node, reading)
        self.floors = self.floors or reading.floors
        seen = self._processes.get(key)
        self._processes[key] = _Seen(reading, lag_s, ticks)
        latest = self._latest.get(node)
        if latest is None or reading.at_s > latest.at_s:
            self._latest[node] = reading
        if start or seen is None or reading.at_s <= seen.reading.at_s:
            return
        used = max(0.0, reading.process_cpu_s - seen.reading.process_cpu_s)
        processes = self._cpu.setdefault(node, {})
        cpu, wall = processes.get(reading.pid, (0.0, 0.0))
        processes[reading.pid] = (cpu + used, wall + reading.at_s - seen.reading.at_s)
        if ticks > seen.ticks:
            self._lag.setdefault(node, []).append((lag_s - seen.lag_s, ticks - seen.ticks))

    def interval(self, node: str) -> dict[str, Any]:
        """The node's resource figures since the previous call (NodeSecond's fields), or none
        when it has no two readings apart yet."""
        processes, lags = self._cpu.pop(node, {}), self._lag.pop(node, [])
        cpus = [cpu / wall for cpu, wall in processes.values() if wall > 0]
        now, before = self._latest.get(node), self._nodes.get(node)
        figures: dict[str, Any] = {}
        if cpus and now is not None:
            one = min(1.0, now.capacity_cores) or 1.0
            figures.update(
                actors_cpu=sum(cpus),
                busiest_actor_cpu=max(cpus) / one,
                capacity_cores=now.capacity_cores,
            )
        if lags:
            figures["loop_lag_s"] = sum(s for s, _ in lags) / sum(n for _, n in lags)
        if now is None:
            return figures
        self._nodes[node] = now
        if before is None or now.at_s <= before.at_s:
            return figures
        elapsed = now.at_s - before.at_s
        total = now.node_total_s - before.node_total_s
        if total > 0:
            figures["node_cpu"] = min(1.0, (now.node_busy_s - before.node_busy_s) / total)
        share = quota_throttled(
            (before.quota_periods, before.quota_throttled),
            (now.quota_periods, now.quota_throttled),
        )
        if share is not None:
            figures["quota_throttled"] = share
        figures["nics"] = nic_seconds(before.nics, now.nics, elapsed)
        return figures


def nic_seconds(
    before: Sequence[NicCounters], now: Sequence[NicCounters], elapsed_s: float
) -> tuple[NicSecond, ...]:
    """Each NIC's bits per second each way between two readings of its counters."""
    earlier: Mapping[str, NicCounters] = {nic.name: nic for nic in before}
    seconds = []
    for nic in now:
        was = earlier.get(nic.name)
        if was is None or elapsed_s <= 0:
            continue
        rx = max(0, nic.rx_bytes - was.rx_bytes) * 8 / elapsed_s
        tx = max(0, nic.tx_bytes - was.tx_bytes) * 8 / elapsed_s
        seconds.append(NicSecond(nic.name, rx, tx, nic.speed_bps))
    return tuple(seconds)

"""Which resource set a phase's rate: one written rule per kind, judged per node from its
seconds (model.resources.NodeSecond), then for the cluster.

The rules, first match wins (README: "Where the limit is" lists the same):

- `target` / `rate-limit`: the phase ran at the tool's own cap (target_gbps,
  cluster_target_gbps, rate_limit): between AT_CAP and 1 / AT_CAP of it, so the tool held
  itself back (a cap the rate overshot did not set it).
- `throttled`: THROTTLED_SHARE or more of the requests were answered with throttling (503
  SlowDown, 5xx, timeouts) and retried.
- `client-cpu`: in MOST_SECONDS of the seconds or more, the busiest actor used SATURATED of
  what one process can use, the actors together SATURATED of the cores they may use, the cgroup
  quota stopped them in QUOTA_THROTTLED of its periods, or the event loops woke LAG_S late.
- `client-network`: one NIC at SATURATED of its speed or more (the busier direction) in
  MOST_SECONDS of the seconds or more; it needs the NIC's speed (the kernel's, or `nic_gbps`).
  When both client rules hold, the one that held in more seconds names the limit.
- `server`: neither client rule holds (the client has headroom), and either latency rose by
  RISE or more with concurrency while throughput rose by less than GAIN, or requests were in
  flight at BUSY_IN_FLIGHT of the limit in MOST_SECONDS of the seconds (they waited on the
  store, not on the client).
- `unclear`: none held; the evidence names the rule that came nearest (its mean figure over
  its threshold: the busiest actor's CPU, the NIC's use, in flight over the limit, throttling).

The cluster's verdict is the kind most nodes share (ties: in the order above), naming them.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from s3dlio_ray._internal.model.resources import NodeSecond
from s3dlio_ray._internal.model.vocabulary import Limit

MIN_SECONDS = 2
AT_CAP = 0.9
THROTTLED_SHARE = 0.05
SATURATED = 0.85
QUOTA_THROTTLED = 0.25
LAG_S = 0.05
MOST_SECONDS = 0.5
RISE = 1.3
GAIN = 1.15
BUSY_IN_FLIGHT = 0.8

ORDER = (
    Limit.TARGET,
    Limit.RATE_LIMIT,
    Limit.THROTTLED,
    Limit.CLIENT_CPU,
    Limit.CLIENT_NETWORK,
    Limit.SERVER,
    Limit.UNCLEAR,
)

Evidence = Mapping[str, float | int | str | None]


@dataclass(frozen=True)
class Cap:
    """One of the tool's own caps on a phase, and what the phase achieved in its unit."""

    kind: Limit
    limit_per_s: float
    achieved_per_s: float = 0.0
    unit: str = "B/s"

    def reached(self, bytes_per_s: float, ops_per_s: float) -> Cap:
        """The cap beside what a phase (or its last minute) achieved, in the cap's unit."""
        achieved = bytes_per_s if self.unit == "B/s" else ops_per_s
        return Cap(self.kind, self.limit_per_s, achieved, self.unit)


@dataclass(frozen=True)
class Bottleneck:
    """What set the rate, where (a node, a NIC, or the nodes that share it), the figures that
    show it, and the rule that matched (for `unclear`: the one that came nearest)."""

    kind: Limit
    where: str
    evidence: Evidence = field(default_factory=dict)
    rule: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {
            "kind": str(self.kind),
            "where": self.where,
            "rule": self.rule,
            "evidence": dict(self.evidence),
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> Bottleneck:
        return cls(Limit(doc["kind"]), doc["where"], dict(doc["evidence"]), doc.get("rule", ""))

    def describe(self) -> str:
        """`limited by ...: evidence` as the summary prints it."""
        return f"{HEADLINES[self.kind]}: {self.explain()}"

    def explain(self) -> str:
        e = self.evidence
        if self.kind in (Limit.TARGET, Limit.RATE_LIMIT):
            return f"{_num(e.get('achieved'))} of {_num(e.get('cap'))} {e.get('unit', '')}"
        if self.kind == Limit.THROTTLED:
            return (
                f"{_pct(e.get('throttled_share'))} of {e.get('requests')} requests throttled "
                f"and retried on {self.where}"
            )
        parts = []
        if self.kind == Limit.CLIENT_NETWORK:
            parts.append(
                f"{self.where} at {_pct(e.get('nic_utilization'))} of "
                f"{_num(e.get('nic_speed_gbps'))} Gb/s ({_num(e.get('nic_gbps'))} Gb/s)"
            )
        elif self.kind == Limit.CLIENT_CPU:
            parts.append(
                f"{self.where}: actors at {_pct(e.get('cpu'))} of "
                f"{_num(e.get('capacity_cores'))} cores "
                f"(busiest {_pct(e.get('busiest_actor_cpu'))})"
            )
            if e.get("loop_lag_ms") is not None:
                parts.append(f"loop lag {_num(e.get('loop_lag_ms'))} ms")
            if e.get("quota_throttled"):
                parts.append(f"CPU quota hit in {_pct(e.get('quota_throttled'))} of periods")
            if e.get("controller_held"):
                parts.append(
                    f"the controllers held their limit in {_pct(e.get('controller_held'))} of "
                    "their ticks (more requests would only wait for the CPU)"
                )
        else:
            nodes = e.get("nodes")
            at = f"{nodes} nodes" if isinstance(nodes, int) and nodes > 1 else self.where
            if e.get("cpu") is not None:
                cpu = f"{at} at {_pct(e.get('cpu'))} CPU"
                if e.get("node_cpu") is not None:
                    cpu += f" (node {_pct(e.get('node_cpu'))} busy)"
                parts.append(cpu)
            if e.get("nic_utilization") is not None:
                parts.append(f"NICs at {_pct(e.get('nic_utilization'))}")
            elif e.get("nic_gbps") is not None:
                parts.append(f"NICs {_num(e.get('nic_gbps'))} Gb/s (speed unknown: nic_gbps)")
            if e.get("ttfb_p50_ms") is not None:
                waited = f"TTFB p50 {_num(e.get('ttfb_p50_ms'))} ms"
            else:
                waited = f"latency p50 {_num(e.get('latency_p50_ms'))} ms"
            rise = e.get("latency_rise")
            if isinstance(rise, float) and rise >= RISE:
                waited += f" rising with concurrency (x{rise:.1f})"
            parts.append(waited)
            if self.kind == Limit.UNCLEAR and e.get("nearest"):
                parts.append(f"nearest rule: {e.get('nearest')}")
        return ", ".join(parts)


HEADLINES = {
    Limit.CLIENT_CPU: "limited by the client's CPU",
    Limit.CLIENT_NETWORK: "limited by the client's network",
    Limit.SERVER: "limited by the server",
    Limit.THROTTLED: "limited by the store's throttling",
    Limit.TARGET: "held at its target",
    Limit.RATE_LIMIT: "held at its rate limit",
    Limit.UNCLEAR: "limit unclear",
}

RULES = {
    Limit.TARGET: f"the phase's rate within {1 - AT_CAP:.0%} of target_gbps",
    Limit.RATE_LIMIT: f"the phase's rate within {1 - AT_CAP:.0%} of rate_limit",
    Limit.THROTTLED: (
        f"{THROTTLED_SHARE:.0%} or more of requests throttled and retried (503 SlowDown, 5xx, "
        "timeouts)"
    ),
    Limit.CLIENT_CPU: (
        f"in {MOST_SECONDS:.0%}+ of seconds: busiest actor or all actors at {SATURATED:.0%}+ "
        f"of their cores, CPU quota hit in {QUOTA_THROTTLED:.0%}+ of periods, or loop lag "
        f"{LAG_S * 1000:.0f}+ ms"
    ),
    Limit.CLIENT_NETWORK: (
        f"a NIC at {SATURATED:.0%}+ of its speed in {MOST_SECONDS:.0%}+ of seconds"
    ),
    Limit.SERVER: (
        f"client headroom, and latency x{RISE}+ with concurrency for under x{GAIN} throughput, "
        f"or {BUSY_IN_FLIGHT:.0%}+ of the limit in flight in {MOST_SECONDS:.0%}+ of seconds"
    ),
    Limit.UNCLEAR: "no rule held",
}


@dataclass(frozen=True)
class PhaseBottleneck:
    """The cluster's verdict and each node's."""

    cluster: Bottleneck
    nodes: Mapping[str, Bottleneck] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.cluster.to_dict(),
            "nodes": {node: b.to_dict() for node, b in self.nodes.items()},
        }

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> PhaseBottleneck:
        nodes = {node: Bottleneck.from_dict(b) for node, b in doc.get("nodes", {}).items()}
        return cls(Bottleneck.from_dict(doc), nodes)


def judge(
    seconds: Sequence[NodeSecond], caps: Sequence[Cap] = (), held: float | None = None
) -> PhaseBottleneck:
    """The verdict of each node from its seconds, and the cluster's from theirs; `held`: the
    share of the actors' controller ticks that held for their own CPU (evidence, when any)."""
    by_node: dict[str, list[NodeSecond]] = {}
    for second in seconds:
        by_node.setdefault(second.node, []).append(second)
    nodes = {node: judge_node(node, rows, caps) for node, rows in sorted(by_node.items())}
    return PhaseBottleneck(_cluster(nodes, held), nodes)


def judge_node(node: str, seconds: Sequence[NodeSecond], caps: Sequence[Cap] = ()) -> Bottleneck:
    """One node's verdict: the first rule (in the module's order) its seconds satisfy."""
    active = [s for s in seconds if s.requests or s.in_flight]
    evidence: dict[str, float | int | str | None] = {**_figures(active), "seconds": len(active)}
    for cap in caps:
        share = cap.achieved_per_s / cap.limit_per_s if cap.limit_per_s > 0 else 0.0
        if AT_CAP <= share <= 1 / AT_CAP:
            scale = 1e9 if cap.unit == "B/s" else 1.0
            unit = "GB/s" if cap.unit == "B/s" else cap.unit
            evidence.update(
                cap=cap.limit_per_s / scale, achieved=cap.achieved_per_s / scale, unit=unit
            )
            return _verdict(cap.kind, node, evidence)
    if len(active) < MIN_SECONDS:
        evidence["nearest"] = f"fewer than {MIN_SECONDS} seconds of samples"
        return _verdict(Limit.UNCLEAR, node, evidence)
    requests = sum(s.requests for s in active)
    throttles = sum(s.throttles for s in active)
    share = _throttled_share(throttles, requests)
    evidence.update(throttles=throttles, requests=requests, throttled_share=share)
    if share >= THROTTLED_SHARE:
        return _verdict(Limit.THROTTLED, node, evidence)
    cpu = _share(active, _cpu_busy)
    nic, network = _busiest_nic(active)
    waiting = _share(active, lambda s: s.limit > 0 and s.in_flight >= BUSY_IN_FLIGHT * s.limit)
    rise, gain = _rise(active)
    evidence.update(
        cpu_saturated=cpu, nic_saturated=network, waiting=waiting, latency_rise=rise, gain=gain
    )
    if max(cpu, network) >= MOST_SECONDS:
        if network > cpu:
            return _verdict(Limit.CLIENT_NETWORK, f"{node} {nic}", evidence)
        return _verdict(Limit.CLIENT_CPU, node, evidence)
    rising = rise is not None and rise >= RISE and gain is not None and gain < GAIN
    if rising or waiting >= MOST_SECONDS:
        return _verdict(Limit.SERVER, node, evidence)
    scores = {
        Limit.CLIENT_CPU: (_number(evidence.get("busiest_actor_cpu")) or 0.0) / SATURATED,
        Limit.CLIENT_NETWORK: (_number(evidence.get("nic_utilization")) or 0.0) / SATURATED,
        Limit.SERVER: (_mean([s.in_flight / s.limit for s in active if s.limit]) or 0.0)
        / BUSY_IN_FLIGHT,
        Limit.THROTTLED: share / THROTTLED_SHARE,
    }
    nearest = max(scores, key=lambda kind: scores[kind])
    evidence["nearest"] = f"{nearest} ({scores[nearest]:.0%} of its threshold)"
    return _verdict(Limit.UNCLEAR, node, evidence)


def _throttled_share(throttles: int, requests: int) -> float:
    """Throttled answers among all answers (a throttled request is retried, then counted)."""
    return throttles / max(1, requests + throttles)


def _verdict(kind: Limit, where: str, evidence: Evidence) -> Bottleneck:
    return Bottleneck(kind, where, dict(evidence), RULES[kind])


def cpu_saturated(
    one_process: float,
    loop_lag_s: float | None,
    quota_throttled: float | None,
    all_processes: float = 0.0,
) -> bool:
    """The client-cpu rule's test of one interval, as the verdicts and the engine's own
    controller both apply it: a process (or all of them) at SATURATED of the CPU it may use,
    the quota stopping it in QUOTA_THROTTLED of its periods, or its loop LAG_S late."""
    return (
        one_process >= SATURATED
        or all_processes >= SATURATED
        or (quota_throttled or 0.0) >= QUOTA_THROTTLED
        or (loop_lag_s or 0.0) >= LAG_S
    )


def _cpu_busy(second: NodeSecond) -> bool:
    capacity = second.capacity_cores or 0.0
    together = (second.actors_cpu or 0.0) / capacity if capacity else 0.0
    return cpu_saturated(
        second.busiest_actor_cpu or 0.0, second.loop_lag_s, second.quota_throttled, together
    )


def _share(seconds: Sequence[NodeSecond], holds: Callable[[NodeSecond], bool]) -> float:
    return sum(1 for s in seconds if holds(s)) / len(seconds) if seconds else 0.0


def _busiest_nic(seconds: Sequence[NodeSecond]) -> tuple[str | None, float]:
    """The NIC saturated in the most seconds, and the share of seconds it was."""
    counts: dict[str, int] = {}
    for second in seconds:
        for nic in second.nics:
            full = (nic.utilization or 0.0) >= SATURATED
            counts[nic.name] = counts.get(nic.name, 0) + full
    if not counts:
        return None, 0.0
    name = max(counts, key=lambda n: counts[n])
    return name, counts[name] / len(seconds)


def _rise(seconds: Sequence[NodeSecond]) -> tuple[float | None, float | None]:
    """Latency and throughput at the busier half of the seconds (by requests in flight) over
    the lighter half; None when concurrency hardly varied (under 1.5x) or latency is unknown."""
    timed = sorted(
        (s for s in seconds if s.latency_p50_s and s.in_flight), key=lambda s: s.in_flight
    )
    if len(timed) < 2 * MIN_SECONDS:
        return None, None
    half = len(timed) // 2
    light, busy = timed[:half], timed[-half:]
    if (_mean([s.in_flight for s in busy]) or 0.0) < 1.5 * (
        _mean([s.in_flight for s in light]) or 0.0
    ):
        return None, None
    latency = statistics.median(_known(s.ttfb_p50_s or s.latency_p50_s for s in busy))
    latency /= statistics.median(_known(s.ttfb_p50_s or s.latency_p50_s for s in light))
    rate = _mean([s.bytes_per_s for s in light])
    gain = (_mean([s.bytes_per_s for s in busy]) or 0.0) / rate if rate else None
    return latency, gain


def _figures(seconds: Sequence[NodeSecond]) -> dict[str, float | int | str | None]:
    """The evidence every verdict shows: over the node's seconds, means, and medians for the
    NIC and latencies (a phase's first and last seconds are partly idle)."""
    capacity = _mean(_known(s.capacity_cores for s in seconds))
    cpu = _known((s.actors_cpu or 0.0) / s.capacity_cores for s in seconds if s.capacity_cores)
    nics = [n for n in (s.busiest_nic for s in seconds) if n is not None]
    names = [n.name for n in nics]
    busiest = max(set(names), key=names.count) if names else None
    ours = [n for n in nics if n.name == busiest]
    return {
        "gbps": (_mean([s.bytes_per_s for s in seconds]) or 0.0) / 1e9,
        "cpu": _mean(cpu),
        "busiest_actor_cpu": _mean(_known(s.busiest_actor_cpu for s in seconds)),
        "capacity_cores": capacity,
        "node_cpu": _mean(_known(s.node_cpu for s in seconds)),
        "quota_throttled": _mean(_known(s.quota_throttled for s in seconds)),
        "loop_lag_ms": _ms(_mean(_known(s.loop_lag_s for s in seconds))),
        "nic": busiest,
        "nic_gbps": _median([max(n.rx_bps, n.tx_bps) / 1e9 for n in ours]),
        # A NIC's rated speed, the same each second: the mean of equal floats can miss it.
        "nic_speed_gbps": max(
            _known(n.speed_bps / 1e9 if n.speed_bps else None for n in ours), default=None
        ),
        "nic_utilization": _median(_known(n.utilization for n in ours)),
        "ttfb_p50_ms": _ms(_median(_known(s.ttfb_p50_s for s in seconds))),
        "latency_p50_ms": _ms(_median(_known(s.latency_p50_s for s in seconds))),
        "in_flight": _mean([float(s.in_flight) for s in seconds]),
        "limit": _mean([float(s.limit) for s in seconds]),
    }


def _cluster(nodes: Mapping[str, Bottleneck], held: float | None) -> Bottleneck:
    if not nodes:
        return Bottleneck(Limit.UNCLEAR, "cluster", {"nearest": "no seconds sampled"}, "")
    counts = {kind: sum(1 for b in nodes.values() if b.kind == kind) for kind in ORDER}
    kind = max(ORDER, key=lambda k: (counts[k], -ORDER.index(k)))
    sharing = [b for b in nodes.values() if b.kind == kind]
    evidence: dict[str, float | int | str | None] = {
        "nodes": len(nodes),
        "nodes_limited": len(sharing),
    }
    means = (
        "cpu",
        "busiest_actor_cpu",
        "node_cpu",
        "quota_throttled",
        "nic_utilization",
        "nic_gbps",
        "loop_lag_ms",
    )
    for name in means:
        evidence[name] = _mean(_known(_number(b.evidence.get(name)) for b in nodes.values()))
    for name in ("ttfb_p50_ms", "latency_p50_ms", "latency_rise"):
        evidence[name] = _median(_known(_number(b.evidence.get(name)) for b in nodes.values()))
    evidence["gbps"] = sum(_number(b.evidence.get("gbps")) or 0.0 for b in nodes.values())
    first = sharing[0].evidence
    for name in ("cap", "achieved", "unit", "nearest", "capacity_cores", "nic", "nic_speed_gbps"):
        if name in first:
            evidence[name] = first[name]
    for name in ("throttles", "requests"):
        evidence[name] = sum(int(_number(b.evidence.get(name)) or 0) for b in nodes.values())
    if kind == Limit.THROTTLED:
        throttled, requests = int(evidence["throttles"] or 0), int(evidence["requests"] or 0)
        evidence["throttled_share"] = _throttled_share(throttled, requests)
    if held:
        evidence["controller_held"] = held
    where = ", ".join(b.where for b in sharing)
    return Bottleneck(kind, where, evidence, RULES[kind])


def _known(values: Any) -> list[float]:
    return [float(v) for v in values if v is not None]


def _number(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) else None


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _median(values: Sequence[float]) -> float | None:
    return statistics.median(values) if values else None


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else seconds * 1000


def _pct(value: object) -> str:
    return f"{value:.0%}" if isinstance(value, int | float) else "?"


def _num(value: object) -> str:
    if not isinstance(value, int | float):
        return "?"
    return f"{value:.3g}" if value < 100 else f"{value:.0f}"

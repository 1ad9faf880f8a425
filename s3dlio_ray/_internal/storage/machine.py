"""This node's side of a run: its CPU (and the cgroup quota and CPUs the actors may use) and the
counters of the NICs the engine's connections leave from, read by each actor every second for
the limit verdicts (model.bottleneck).

A read costs tens of microseconds (three small /proc and cgroup files, one netlink-free parse of
/proc/net/dev), far below one percent of a core at one read a second.
"""

from __future__ import annotations

import os
import socket
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import psutil

from s3dlio_ray._internal.model.resources import (
    HostReading,
    MachineFloors,
    NicCounters,
    quota_throttled,
)

CGROUP_ROOT = Path("/sys/fs/cgroup")


def local_address_to(host: str, port: int) -> str | None:
    """The local address the kernel routes to `host` from (a UDP connect sends nothing)."""
    try:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_DGRAM) as probe:
            probe.connect((host, port))
            return str(probe.getsockname()[0])
    except OSError:
        return None


def nics_of(addresses: Iterable[str]) -> tuple[str, ...]:
    """The interfaces that hold these local addresses."""
    wanted = set(addresses)
    names = [
        name
        for name, entries in psutil.net_if_addrs().items()
        if any(entry.address.split("%")[0] in wanted for entry in entries)
    ]
    return tuple(sorted(names))


def cpu_controller() -> Path | None:
    """Where this machine's CPU controller is: cgroup v1's cpu hierarchy, else v2's unified
    tree when it offers `cpu` (None: neither)."""
    for name in ("cpu", "cpu,cpuacct"):
        if (CGROUP_ROOT / name / "cpu.cfs_quota_us").exists():
            return CGROUP_ROOT / name
    controllers = CGROUP_ROOT / "cgroup.controllers"
    if controllers.exists() and "cpu" in controllers.read_text().split():
        return CGROUP_ROOT
    return None


def _cgroup_dirs() -> list[Path]:
    """The cgroup directories holding this process's CPU quota, innermost first, with their
    ancestors (a parent's quota caps its children too)."""
    base = cpu_controller()
    if base is None:
        return []
    try:
        lines = Path("/proc/self/cgroup").read_text().splitlines()
    except OSError:
        return []
    unified = base == CGROUP_ROOT
    path = next(
        (
            path
            for _, controllers, path in (line.split(":", 2) for line in lines)
            if (controllers == "" if unified else "cpu" in controllers.split(","))
        ),
        None,
    )
    if path is None:
        return []
    here = base / path.lstrip("/")
    return [here, *[p for p in here.parents if p.is_relative_to(base)]]


def _quota_cores(directory: Path) -> float | None:
    try:
        maximum = directory / "cpu.max"
        if maximum.exists():
            quota, period = maximum.read_text().split()
            return None if quota == "max" else int(quota) / int(period)
        quota_us = int((directory / "cpu.cfs_quota_us").read_text())
        period_us = int((directory / "cpu.cfs_period_us").read_text())
    except (OSError, ValueError):
        return None
    return quota_us / period_us if quota_us > 0 else None


class HostProbe:
    """Reads this process's and its node's counters; `nic_gbps` gives the NICs' speed where the
    kernel does not know it (virtual NICs) or is wrong (a shaped link)."""

    def __init__(
        self,
        nics: Sequence[str],
        nic_gbps: float | None = None,
        floors: MachineFloors | None = None,
    ) -> None:
        self.nics = tuple(nics)
        self.floors = floors
        self._speeds = self._speeds_of(nic_gbps)
        quotas = {d: q for d in _cgroup_dirs() if (q := _quota_cores(d)) is not None}
        cpus = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
        self.capacity_cores = min([float(cpus or 1), *quotas.values()])
        self._stat = next((d / "cpu.stat" for d in quotas), None)
        self._quota_seen = self._quota_counts()

    def _quota_counts(self) -> tuple[int, int]:
        """The cgroup's quota periods so far, and those in which the quota stopped it."""
        if self._stat is None:
            return 0, 0
        try:
            fields = dict(line.split() for line in self._stat.read_text().splitlines())
            return int(fields["nr_periods"]), int(fields["nr_throttled"])
        except (OSError, KeyError, ValueError):
            return 0, 0

    def quota_throttled_since(self) -> float | None:
        """The share of quota periods since the previous call in which the quota stopped this
        cgroup (None: no quota, or no period passed)."""
        if self._stat is None:
            return None
        before, self._quota_seen = self._quota_seen, self._quota_counts()
        return quota_throttled(before, self._quota_seen)

    def _speeds_of(self, nic_gbps: float | None) -> dict[str, float | None]:
        if nic_gbps:
            return dict.fromkeys(self.nics, nic_gbps * 1e9)
        stats = psutil.net_if_stats()
        return {
            name: stats[name].speed * 1e6 if name in stats and stats[name].speed > 0 else None
            for name in self.nics
        }

    def read(self) -> HostReading:
        times = psutil.cpu_times()
        idle = times.idle + getattr(times, "iowait", 0.0)
        total = sum(times)
        periods, throttled = self._quota_counts()
        counters = psutil.net_io_counters(pernic=True) if self.nics else {}
        nics = tuple(
            NicCounters(name, counters[name].bytes_recv, counters[name].bytes_sent, speed)
            for name, speed in self._speeds.items()
            if name in counters
        )
        return HostReading(
            pid=os.getpid(),
            at_s=time.monotonic(),
            process_cpu_s=time.process_time(),
            node_busy_s=total - idle,
            node_total_s=total,
            capacity_cores=self.capacity_cores,
            quota_periods=periods,
            quota_throttled=throttled,
            nics=nics,
            floors=self.floors,
        )

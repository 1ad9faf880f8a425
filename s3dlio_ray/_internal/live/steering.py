"""The cluster controller fed from the shares' cumulative snapshots, as the phase executor
gathers them each second."""

from __future__ import annotations

import logging

from s3dlio_ray._internal.execution.engine import EngineSnapshot
from s3dlio_ray._internal.tuning.cluster import ActorReading, ClusterController, Steer

log = logging.getLogger(__name__)


class ClusterSteering:
    """The cluster controller fed from the shares' cumulative snapshots: one reading per share
    per tick (what changed since the last), and the steer each share gets with its next."""

    def __init__(self, controller: ClusterController) -> None:
        self.controller = controller
        self._last: dict[int, tuple[int, int, float, int]] = {}
        """Each share's requests, bytes, summed latency and throttles at its last reading."""
        self._steers: dict[int, Steer] = {}
        self._said_held = False

    def of(self, task_id: int) -> tuple[int, Steer] | None:
        steer = self._steers.get(task_id)
        return None if steer is None else (task_id, steer)

    def observe(self, snapshots: dict[int, EngineSnapshot], interval_s: float) -> None:
        readings = {}
        for task_id, snapshot in snapshots.items():
            stats = snapshot.stats
            counts = (stats.latency.count, stats.bytes, stats.latency.total_s, snapshot.throttles)
            ops0, bytes0, latency0, throttles0 = self._last.get(task_id, (0, 0, 0.0, 0))
            self._last[task_id] = counts
            ops, nbytes = stats.latency.count - ops0, stats.bytes - bytes0
            latency = stats.latency.total_s - latency0
            throttles = snapshot.throttles - throttles0
            readings[str(task_id)] = ActorReading(
                ops, nbytes, latency, snapshot.in_flight, throttles > 0, snapshot.cpu_bound
            )
        steers = self.controller.observe(readings, interval_s)
        if self.controller.held_by and not self._said_held:
            self._said_held = True
            log.info(
                "the cluster controller holds its window at %d: an actor's own CPU is its "
                "limit (more requests would only wait for it)",
                self.controller.window,
            )
        self._steers = {int(task_id): steer for task_id, steer in steers.items()}

"""Accelerator utilization (AU) accounting for one simulated accelerator, on any clock, and the
search for the most accelerators whose AU holds.

AU is compute time over the time it is measured across, as MLPerf Storage defines it: the
measurement starts when an epoch's first batch is ready (the first step's I/O is left out) and
ends when the epoch's last compute step does. Waiting for data is the rest. The clock is
injected so the arithmetic is tested without sleeping.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from s3dlio_ray._internal.model.results import AcceleratorEpoch


@dataclass(frozen=True)
class UtilizationProgress:
    """Cumulative over a share's accelerators, up to now: what a live AU rate is made from."""

    compute_s: float = 0.0
    counted_s: float = 0.0
    samples: int = 0
    epoch: int = 0

    @classmethod
    def of(cls, epochs: Sequence[AcceleratorEpoch]) -> UtilizationProgress:
        """What finished epochs add up to."""
        return cls(
            sum(e.compute_s for e in epochs),
            sum(e.counted_s for e in epochs),
            sum(e.samples for e in epochs),
            max((e.epoch for e in epochs), default=0),
        )

    def __add__(self, other: UtilizationProgress) -> UtilizationProgress:
        return UtilizationProgress(
            self.compute_s + other.compute_s,
            self.counted_s + other.counted_s,
            self.samples + other.samples,
            max(self.epoch, other.epoch),
        )

    def __sub__(self, earlier: UtilizationProgress) -> UtilizationProgress:
        """What was added since `earlier` (the epoch is the later one's)."""
        return UtilizationProgress(
            self.compute_s - earlier.compute_s,
            self.counted_s - earlier.counted_s,
            self.samples - earlier.samples,
            self.epoch,
        )


class AcceleratorClock:
    """Times one accelerator's epochs: call `begin_epoch`, then per step `waiting`, `ready`
    (the batch is in memory), `computed`; `end_epoch` answers the epoch's record."""

    def __init__(self, rank: int, clock: Callable[[], float] = time.perf_counter) -> None:
        self.rank = rank
        self._clock = clock
        self._epochs: list[AcceleratorEpoch] = []
        self._epoch = 0
        self._began: float | None = None
        self._first_ready: float | None = None
        self._wait_from: float | None = None
        self._compute_from: float | None = None
        self._steps = self._samples = self._bytes = 0
        self._wait_s = self._compute_s = 0.0

    @property
    def epochs(self) -> list[AcceleratorEpoch]:
        return list(self._epochs)

    def begin_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self._began = self._clock()
        self._first_ready = self._wait_from = self._compute_from = None
        self._steps = self._samples = self._bytes = 0
        self._wait_s = self._compute_s = 0.0

    def waiting(self) -> None:
        self._wait_from = self._clock()

    def ready(self) -> None:
        now = self._clock()
        if self._wait_from is not None:
            self._wait_s += now - self._wait_from
            self._wait_from = None
        if self._first_ready is None:
            self._first_ready = now
        self._compute_from = now

    def computed(self, samples: int, nbytes: int) -> None:
        now = self._clock()
        if self._compute_from is not None:
            self._compute_s += now - self._compute_from
            self._compute_from = None
        self._steps += 1
        self._samples += samples
        self._bytes += nbytes

    def end_epoch(self) -> AcceleratorEpoch:
        now = self._clock()
        began = self._began if self._began is not None else now
        counted = now - self._first_ready if self._first_ready is not None else 0.0
        epoch = AcceleratorEpoch(
            self.rank,
            self._epoch,
            self._steps,
            self._samples,
            self._bytes,
            self._wait_s,
            self._compute_s,
            counted,
            now - began,
        )
        self._epochs.append(epoch)
        self._began = self._first_ready = None
        return epoch

    def progress(self) -> UtilizationProgress:
        """Everything so far, the running epoch's compute and counted time up to now."""
        now = self._clock()
        running = now - self._compute_from if self._compute_from is not None else 0.0
        compute = self._compute_s + running
        counted = now - self._first_ready if self._first_ready is not None else 0.0
        running_epoch = UtilizationProgress(compute, counted, self._samples, self._epoch)
        return UtilizationProgress.of(self._epochs) + running_epoch


async def most_that_hold(
    holds: Callable[[int], Awaitable[bool]],
    most: int,
    stopped: Callable[[], bool] = lambda: False,
) -> int:
    """The largest count in 1..`most` for which `holds` answers True, as MLPerf Storage
    submitters search accelerators by hand: double while it holds, then bisect between the last
    count that held and the first that did not (0: not even 1 holds). Assumes that once a count
    fails every larger one does; `stopped` ends the search early with what is known."""
    held, failed, count = 0, None, 1
    while count <= most and failed is None and not stopped():
        if await holds(count):
            held, count = count, count * 2
        else:
            failed = count
    if failed is None and 0 < held < most and not stopped():
        if await holds(most):
            held = most
        else:
            failed = most
    while failed is not None and failed - held > 1 and not stopped():
        middle = (held + failed) // 2
        if await holds(middle):
            held = middle
        else:
            failed = middle
    return held

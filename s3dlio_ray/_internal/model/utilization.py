"""Accelerator utilization (AU) accounting for one simulated accelerator, on any clock, and the
search for the most accelerators whose AU holds.

AU is compute time over the time it is measured across, as DLIO (MLPerf Storage) defines it:
per accelerator and epoch, the compute time of the counted steps over the epoch's wall time less
the load and compute time of the steps left out (the first `exclude_start_steps`, 1 by
default, and the last `exclude_end_steps`). The clock is injected so the arithmetic is tested
without sleeping.
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
    """Times one accelerator's epochs: call `begin_epoch`, then per step `waiting` (the step
    starts: its batch is asked for), `ready` (the batch is in memory), `computed`; `end_epoch`
    answers the epoch's record, measured as DLIO measures it: the first `exclude_start` and
    last `exclude_end` of the epoch's `steps` (its expected steps; those it took, when not
    given) are left out of both the compute time and the time counted. `progress` counts the
    same way while the epoch runs, so the live figure ends where the record does."""

    def __init__(
        self,
        rank: int,
        clock: Callable[[], float] = time.perf_counter,
        exclude_start: int = 1,
        exclude_end: int = 0,
        steps: int | None = None,
    ) -> None:
        if exclude_end and steps is None:
            raise ValueError("leaving out an epoch's last steps needs its expected steps")
        self.rank = rank
        self._clock = clock
        self._exclude = (exclude_start, exclude_end)
        self._expected = steps
        self._epochs: list[AcceleratorEpoch] = []
        self._epoch = 0
        self._began: float | None = None
        self._wait_from: float | None = None
        self._compute_from: float | None = None
        self._samples = self._bytes = 0
        self._wait_s = 0.0
        self._steps = 0
        self._counted_steps = 0
        self._compute_s = 0.0
        """Compute time of the counted steps so far."""
        self._left_out_s = 0.0
        """Load and compute time of the steps left out so far."""

    @property
    def epochs(self) -> list[AcceleratorEpoch]:
        return list(self._epochs)

    def _counts(self, index: int) -> bool:
        """Whether step `index` (from 0) of the epoch is counted."""
        start, end = self._exclude
        if index < start:
            return False
        return self._expected is None or index < self._expected - end

    def begin_epoch(self, epoch: int) -> None:
        self._epoch = epoch
        self._began = self._clock()
        self._wait_from = self._compute_from = None
        self._samples = self._bytes = self._steps = self._counted_steps = 0
        self._wait_s = self._compute_s = self._left_out_s = 0.0

    def waiting(self) -> None:
        self._wait_from = self._clock()

    def ready(self) -> None:
        now = self._clock()
        if self._wait_from is not None:
            self._wait_s += now - self._wait_from
        self._compute_from = now

    def computed(self, samples: int, nbytes: int) -> None:
        now = self._clock()
        if self._compute_from is not None:
            started = self._wait_from if self._wait_from is not None else self._compute_from
            if self._counts(self._steps):
                self._compute_s += now - self._compute_from
                self._counted_steps += 1
            else:
                self._left_out_s += now - started
            self._steps += 1
            self._compute_from = self._wait_from = None
        self._samples += samples
        self._bytes += nbytes

    def end_epoch(self) -> AcceleratorEpoch:
        now = self._clock()
        began = self._began if self._began is not None else now
        epoch = AcceleratorEpoch(
            self.rank,
            self._epoch,
            self._steps,
            self._samples,
            self._bytes,
            self._wait_s,
            self._compute_s,
            max(0.0, now - began - self._left_out_s),
            now - began,
            counted_steps=self._counted_steps,
        )
        self._epochs.append(epoch)
        self._began = None
        return epoch

    def progress(self) -> UtilizationProgress:
        """Every finished epoch and the running one up to now, counted as the records count:
        what the live AU is drawn from."""
        now = self._clock()
        compute, counted = self._compute_s, 0.0
        if self._began is not None:
            counted = now - self._began - self._left_out_s
            running = self._wait_from if self._wait_from is not None else self._compute_from
            if not self._counts(self._steps) and running is not None:
                counted -= now - running
            elif self._compute_from is not None:
                compute += now - self._compute_from
        running_epoch = UtilizationProgress(compute, max(0.0, counted), self._samples, self._epoch)
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

"""Accelerator utilization accounting against the arithmetic, on a fake clock."""

from __future__ import annotations

import asyncio
import random

import pytest

from s3dlio_ray._internal.execution.phases.train import ByteBudget
from s3dlio_ray._internal.model.results import AcceleratorEpoch, TrainingResult
from s3dlio_ray._internal.model.utilization import (
    AcceleratorClock,
    UtilizationProgress,
    most_that_hold,
)


class FakeClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


def run_epoch(accelerator: AcceleratorClock, clock: FakeClock, waits: list[float], compute: float):
    accelerator.begin_epoch(1)
    for wait in waits:
        accelerator.waiting()
        clock.advance(wait)
        accelerator.ready()
        clock.advance(compute)
        accelerator.computed(samples=4, nbytes=4000)
    return accelerator.end_epoch()


def test_au_leaves_out_the_first_step_as_dlio_does():
    clock = FakeClock()
    accelerator = AcceleratorClock(rank=3, clock=clock)
    epoch = run_epoch(accelerator, clock, waits=[5.0, 0.5, 0.0, 1.5], compute=1.0)
    assert epoch.steps == 4 and epoch.samples == 16 and epoch.bytes == 16000
    assert epoch.wait_s == pytest.approx(7.0)
    assert epoch.elapsed_s == pytest.approx(11.0)
    # The first step (5 s loading, 1 s computing) is left out of both: the other three
    # computed 3 s of the 11 - 6 = 5 s left.
    assert epoch.counted_steps == 3
    assert epoch.compute_s == pytest.approx(3.0)
    assert epoch.counted_s == pytest.approx(5.0)
    assert epoch.au == pytest.approx(3.0 / 5.0)


def test_a_one_step_epoch_counts_nothing_and_scores_zero_as_in_dlio():
    clock = FakeClock()
    epoch = run_epoch(AcceleratorClock(0, clock), clock, waits=[30.0], compute=1.0)
    assert epoch.counted_steps == 0 and epoch.au == 0.0
    training = TrainingResult((epoch,), accelerators=1, au_threshold=0.9)
    assert not training.au_meaningful and training.passed is None


def test_no_waiting_after_the_first_batch_is_full_utilization():
    clock = FakeClock()
    epoch = run_epoch(AcceleratorClock(0, clock), clock, waits=[3.0, 0, 0, 0, 0], compute=0.2)
    assert epoch.au == pytest.approx(1.0)


def test_progress_counts_as_the_record_does_so_the_live_rate_ends_where_it_does():
    clock = FakeClock()
    accelerator = AcceleratorClock(0, clock, steps=3)
    run_epoch(accelerator, clock, waits=[1.0, 1.0, 1.0], compute=1.0)  # counted 4 s, compute 2 s
    assert UtilizationProgress.of(accelerator.epochs) == UtilizationProgress(2.0, 4.0, 12, 1)
    accelerator.begin_epoch(2)
    accelerator.waiting()
    clock.advance(2.0)
    accelerator.ready()
    clock.advance(0.5)
    # the running first step is left out: it adds nothing yet
    before = accelerator.progress()
    assert before == UtilizationProgress(2.0, 4.0, 12, 2)
    clock.advance(0.5)
    accelerator.computed(4, 4000)
    accelerator.waiting()
    clock.advance(1.0)
    accelerator.ready()
    clock.advance(0.25)
    # the second step is counted: its wait and the compute so far
    delta = accelerator.progress() - before
    assert (delta.compute_s, delta.counted_s) == pytest.approx((0.25, 1.25))
    clock.advance(0.75)
    accelerator.computed(4, 4000)
    accelerator.waiting()
    clock.advance(0.5)
    accelerator.ready()
    clock.advance(1.0)
    accelerator.computed(4, 4000)
    live = accelerator.progress()
    accelerator.end_epoch()
    assert UtilizationProgress.of(accelerator.epochs) == live


def test_the_runs_au_is_the_mean_of_epochs_each_the_mean_of_accelerators():
    def epoch(rank: int, number: int, compute: float, counted: float) -> AcceleratorEpoch:
        return AcceleratorEpoch(
            rank, number, 11, 44, 440, counted - compute, compute, counted, counted, "", 10
        )

    epochs = (epoch(0, 1, 9, 10), epoch(1, 1, 6, 10), epoch(0, 2, 10, 10), epoch(1, 2, 10, 10))
    training = TrainingResult(epochs, accelerators=2, au_threshold=0.9)
    assert training.au == pytest.approx((0.75 + 1.0) / 2) and training.passed is False
    assert training.au_std == pytest.approx(0.125) and training.au_meaningful
    first, second = training.by_epoch()
    assert first.au == pytest.approx(0.75) and first.passed is False
    assert second.au == pytest.approx(1.0) and second.passed is True
    assert first.samples == 88 and first.elapsed_s == 10
    slow = min(training.by_accelerator(), key=lambda a: a.au)
    assert slow.rank == 1 and slow.au == pytest.approx(0.8)
    assert TrainingResult(epochs).passed is None
    assert TrainingResult.from_dict(training.to_dict()) == training


def test_the_byte_budget_never_hands_out_more_than_it_holds_and_serves_in_order():
    async def main() -> list[str]:
        budget = ByteBudget(100)
        order: list[str] = []

        async def take(name: str, nbytes: int) -> None:
            await budget.take(nbytes)
            order.append(name)

        await budget.take(70)
        waiting = [asyncio.ensure_future(take(n, b)) for n, b in (("big", 60), ("small", 10))]
        await asyncio.sleep(0)
        assert order == [] and budget.held == 70  # small waits behind big: first come, first served
        budget.give(70)
        await asyncio.gather(*waiting)
        assert budget.held == 70 and budget.peak == 70
        return order

    assert asyncio.run(main()) == ["big", "small"]


@pytest.mark.parametrize("most", [1, 2, 5, 8, 13, 64, 100])
def test_the_search_finds_the_largest_count_that_holds_doubling_then_bisecting(most):
    for limit in range(0, most + 1):
        tries: list[int] = []

        async def holds(count: int, limit: int = limit, tries: list[int] = tries) -> bool:
            tries.append(count)
            return count <= limit

        assert asyncio.run(most_that_hold(holds, most)) == limit
        assert len(tries) == len(set(tries)) <= 2 * most.bit_length() + 1  # no count tried twice
        doubling = [t for t in tries if t & (t - 1) == 0]
        assert tries[: len(doubling)] == doubling  # the doubling comes first


def test_a_stopped_search_answers_what_it_knows():
    tries: list[int] = []

    async def holds(count: int) -> bool:
        tries.append(count)
        return True

    assert asyncio.run(most_that_hold(holds, 100, stopped=lambda: len(tries) >= 3)) == 4
    assert tries == [1, 2, 4]


def dlio_au(steps: list[list[tuple[float, float]]], start: int, end: int) -> tuple[float, float]:
    """DLIO's formulas (its statscounter), written out as the oracle: per accelerator and epoch,
    the compute time of the steps from `start` to the last but `end`, over the epoch's wall time
    less the load-and-compute time of the steps left out; an epoch's AU the mean over
    accelerators; the run's the mean over epochs with the population standard deviation.
    `steps[epoch * ranks + rank]` is that accelerator's (load, compute) per step."""
    per_epoch: dict[int, list[float]] = {}
    for index, timings in enumerate(steps):
        wall = sum(load + compute for load, compute in timings)
        last = len(timings) - 1 - end
        compute = sum(c for _, c in timings[start : last + 1])
        left_out = sum(load + c for load, c in timings[:start] + timings[last + 1 :])
        au = 0.0 if compute == 0 else compute / (wall - left_out)
        per_epoch.setdefault(index // RANKS, []).append(au)
    epochs = [sum(values) / len(values) for values in per_epoch.values()]
    mean = sum(epochs) / len(epochs)
    return mean, (sum((e - mean) ** 2 for e in epochs) / len(epochs)) ** 0.5


RANKS = 3


@pytest.mark.parametrize(("start", "end"), [(1, 0), (0, 0), (2, 3)])
def test_au_equals_dlios_on_the_same_step_times(start, end):
    rng = random.Random(start * 10 + end)
    steps = [
        [(rng.choice([0.0, rng.uniform(0, 2)]), rng.uniform(0.1, 1)) for _ in range(12)]
        for _ in range(4 * RANKS)
    ]
    clock = FakeClock()
    clocks = [AcceleratorClock(rank, clock, start, end, steps=12) for rank in range(RANKS)]
    for index, timings in enumerate(steps):
        accelerator = clocks[index % RANKS]
        accelerator.begin_epoch(index // RANKS + 1)
        for load, compute in timings:
            accelerator.waiting()
            clock.advance(load)
            accelerator.ready()
            clock.advance(compute)
            accelerator.computed(1, 1)
        accelerator.end_epoch()
    records = tuple(record for a in clocks for record in a.epochs)
    training = TrainingResult(records, accelerators=RANKS, au_threshold=0.5)
    mean, std = dlio_au(steps, start, end)
    assert training.au == pytest.approx(mean) and training.au_std == pytest.approx(std)
    assert training.au_meaningful == (12 - start - end >= 10)
    time_weighted = sum(r.compute_s for r in records) / sum(r.counted_s for r in records)
    assert time_weighted != pytest.approx(mean)  # what this tool reported before

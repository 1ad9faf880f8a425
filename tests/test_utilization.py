"""Accelerator utilization accounting against the arithmetic, on a fake clock."""

from __future__ import annotations

import asyncio

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


def test_au_is_compute_over_the_time_after_the_first_batch():
    clock = FakeClock()
    accelerator = AcceleratorClock(rank=3, clock=clock)
    epoch = run_epoch(accelerator, clock, waits=[5.0, 0.5, 0.0, 1.5], compute=1.0)
    assert epoch.steps == 4 and epoch.samples == 16 and epoch.bytes == 16000
    assert epoch.wait_s == pytest.approx(7.0)
    assert epoch.compute_s == pytest.approx(4.0)
    assert epoch.elapsed_s == pytest.approx(11.0)
    # the first step's 5 s wait is not counted: 4 s of compute in 6 s
    assert epoch.counted_s == pytest.approx(6.0)
    assert epoch.au == pytest.approx(4.0 / 6.0)


def test_no_waiting_after_the_first_batch_is_full_utilization():
    clock = FakeClock()
    epoch = run_epoch(AcceleratorClock(0, clock), clock, waits=[3.0, 0, 0, 0, 0], compute=0.2)
    assert epoch.au == pytest.approx(1.0)


def test_progress_counts_the_running_step_so_a_live_rate_is_exact():
    clock = FakeClock()
    accelerator = AcceleratorClock(0, clock)
    run_epoch(accelerator, clock, waits=[1.0, 1.0], compute=1.0)  # counted 3 s, compute 2 s
    accelerator.begin_epoch(2)
    accelerator.waiting()
    clock.advance(2.0)
    accelerator.ready()
    clock.advance(0.5)
    before = accelerator.progress()
    assert before == UtilizationProgress(2.5, 3.5, 8, 2)
    clock.advance(0.5)
    accelerator.computed(4, 4000)
    accelerator.waiting()
    clock.advance(1.0)
    delta = accelerator.progress() - before
    assert (delta.compute_s, delta.counted_s) == pytest.approx((0.5, 1.5))
    assert UtilizationProgress.of(accelerator.epochs).counted_s == pytest.approx(3.0)


def test_the_cluster_au_weighs_every_accelerator_by_its_time_and_passes_on_the_threshold():
    def epoch(rank: int, number: int, compute: float, counted: float) -> AcceleratorEpoch:
        return AcceleratorEpoch(
            rank, number, 10, 40, 400, counted - compute, compute, counted, counted
        )

    epochs = (epoch(0, 1, 9, 10), epoch(1, 1, 6, 10), epoch(0, 2, 10, 10), epoch(1, 2, 10, 10))
    training = TrainingResult(epochs, accelerators=2, au_threshold=0.9)
    assert training.au == pytest.approx(35 / 40) and training.passed is False
    first, second = training.by_epoch()
    assert first.au == pytest.approx(0.75) and first.passed is False
    assert second.au == pytest.approx(1.0) and second.passed is True
    assert first.samples == 80 and first.elapsed_s == 10
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

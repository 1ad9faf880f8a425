"""TRAIN: simulated accelerators reading a dataset in shuffled epochs, as DLIO emulates training.

Each engine's share is a list of accelerator ranks. Every accelerator runs DLIO's loop per
epoch: wait for its next batch, then compute for `computation_time` (a sleep: no CPU), while its
loader reads up to `prefetch_size` batches ahead, `read_threads` samples at a time. A sample is
one GET of its bytes (a ranged GET inside a multi-sample file, the whole object when the file is
the sample; split into ranges only above the part size): sizes and offsets come from the
layout, never from a HEAD. The reads go through the engine's one run loop (an async iterator of
operations), so they are counted, limited and stopped like any other phase's.

Memory: every batch reserves its bytes from the share's budget before its first read starts and
gives them back when its compute step ends, so bytes in flight plus bytes read ahead never exceed
`memory_budget_mb` (one whole batch must fit; the settings check says so up front).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections import deque
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field, replace

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.execution.phases.step import Run, run_recorded, spec_of
from s3dlio_ray._internal.execution.phases.transfer import (
    Done,
    PhaseSpec,
    TrainingSpec,
    TransferOutcome,
)
from s3dlio_ray._internal.model.checks import ReadCheck
from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.dataset import Dataset, SampleRead, batches, epoch_order
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import run_prefix
from s3dlio_ray._internal.model.results import PhaseResult, TrainingResult
from s3dlio_ray._internal.model.utilization import (
    AcceleratorClock,
    UtilizationProgress,
    most_that_hold,
)
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.settings.rules import refuse_a_batch_over_budget
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.settings.values import Source
from s3dlio_ray._internal.storage.object_store import ObjectStore
from s3dlio_ray._internal.storage.s3.client import PartGate


class ByteBudget:
    """Bytes handed out first come, first served, up to a limit (None: no limit); keeps its
    high-water mark."""

    def __init__(self, limit: int | None) -> None:
        self.limit = limit
        self.held = 0
        self.peak = 0
        self._waiters: deque[tuple[int, asyncio.Future[None]]] = deque()

    async def take(self, nbytes: int) -> None:
        if self._waiters or not self._fits(nbytes):
            waiter = asyncio.get_running_loop().create_future()
            self._waiters.append((nbytes, waiter))
            try:
                await waiter
            except asyncio.CancelledError:
                if not waiter.done() or waiter.cancelled():
                    with contextlib.suppress(ValueError):
                        self._waiters.remove((nbytes, waiter))
                else:
                    self.give(nbytes)
                raise
        else:
            self._hold(nbytes)

    def give(self, nbytes: int) -> None:
        self.held -= nbytes
        while self._waiters and self._fits(self._waiters[0][0]):
            wanted, waiter = self._waiters.popleft()
            if not waiter.done():
                self._hold(wanted)
                waiter.set_result(None)

    def _fits(self, nbytes: int) -> bool:
        return self.limit is None or self.held + nbytes <= self.limit

    def _hold(self, nbytes: int) -> None:
        self.held += nbytes
        self.peak = max(self.peak, self.held)


@dataclass
class _Batch:
    samples: list[SampleRead]
    reserved: int
    pending: int
    nbytes: int = 0
    done: asyncio.Event = field(default_factory=asyncio.Event)

    def arrived(self, nbytes: int) -> None:
        self.nbytes += nbytes
        self.pending -= 1
        if self.pending <= 0:
            self.done.set()


@dataclass
class _Read:
    """One sample read, the batch it fills and the read thread it holds."""

    sample: SampleRead
    batch: _Batch
    thread: asyncio.Semaphore

    def __str__(self) -> str:
        return str(self.sample)


class Train:
    def __init__(
        self, spec: PhaseSpec, ranks: Sequence[int], clock: Callable[[], float] = time.perf_counter
    ) -> None:
        if spec.training is None:
            raise ValueError("a train phase needs its TrainingSpec")
        self.phase = spec.phase
        self._spec = spec
        self._training = spec.training
        self._ranks = list(ranks)
        training = spec.training
        self._clocks = [
            AcceleratorClock(
                rank,
                clock,
                training.exclude_start_steps,
                training.exclude_end_steps,
                training.steps,
            )
            for rank in self._ranks
        ]
        self._check = ReadCheck(ObjectData(spec.seed), spec.generated)
        self._budget = ByteBudget(spec.training.memory_budget)
        self._orders: dict[int, list[int]] = {}

    def operations(self) -> AsyncIterator[_Read]:
        return self._reads()

    async def _reads(self) -> AsyncIterator[_Read]:
        """The accelerators' sample reads as their loaders ask for them; ends when every
        accelerator has finished its epochs, and stops them when the phase ends first."""
        queue: asyncio.Queue[_Read | None] = asyncio.Queue()
        accelerators = [
            asyncio.ensure_future(self._accelerator(clock, queue)) for clock in self._clocks
        ]
        running = len(accelerators)
        try:
            while running:
                item = await queue.get()
                if item is None:
                    running -= 1
                else:
                    yield item
        finally:
            for task in accelerators:
                task.cancel()
            for outcome in await asyncio.gather(*accelerators, return_exceptions=True):
                if isinstance(outcome, Exception):
                    raise outcome

    def _order(self, epoch: int) -> list[int]:
        """The epoch's sample order, made once for all of this share's accelerators."""
        if epoch not in self._orders:
            training = self._training
            self._orders = {e: order for e, order in self._orders.items() if e >= epoch - 1}
            self._orders[epoch] = epoch_order(
                training.dataset, epoch, training.file_shuffle, training.sample_shuffle
            )
        return self._orders[epoch]

    async def _accelerator(self, clock: AcceleratorClock, queue: asyncio.Queue) -> None:
        training = self._training
        try:
            for epoch in range(1, training.epochs + 1):
                mine = batches(
                    self._order(epoch),
                    clock.rank,
                    training.accelerators,
                    training.batch_size,
                    training.steps,
                )
                await self._epoch(clock, epoch, mine, queue)
        finally:
            queue.put_nowait(None)

    async def _epoch(
        self,
        clock: AcceleratorClock,
        epoch: int,
        mine: list[Sequence[int]],
        queue: asyncio.Queue,
    ) -> None:
        training = self._training
        loaded: asyncio.Queue[_Batch] = asyncio.Queue()
        window = asyncio.Semaphore(training.prefetch_size + 1)
        loader = asyncio.ensure_future(self._load(mine, loaded, window, queue))
        clock.begin_epoch(epoch)
        try:
            for _ in mine:
                clock.waiting()
                batch = await loaded.get()
                await batch.done.wait()
                clock.ready()
                if training.computation_time_s > 0:
                    await asyncio.sleep(training.computation_time_s)
                clock.computed(len(batch.samples), batch.nbytes)
                self._budget.give(batch.reserved)
                window.release()
        finally:
            clock.end_epoch()
            loader.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await loader

    async def _load(
        self,
        mine: list[Sequence[int]],
        loaded: asyncio.Queue[_Batch],
        window: asyncio.Semaphore,
        queue: asyncio.Queue,
    ) -> None:
        """Read batches in order, at most the window's ahead of the one computing, each sample
        when one of the accelerator's read threads is free."""
        dataset = self._training.dataset
        threads = asyncio.Semaphore(self._training.read_threads)
        for indices in mine:
            samples = [dataset.sample(index) for index in indices]
            await window.acquire()
            reserved = sum(sample.length for sample in samples)
            await self._budget.take(reserved)
            batch = _Batch(samples, reserved, len(samples))
            loaded.put_nowait(batch)
            for sample in samples:
                await threads.acquire()
                queue.put_nowait(_Read(sample, batch, threads))

    def cost(self, read: _Read) -> int:
        return read.sample.length

    async def perform(self, read: _Read, store: ObjectStore, gate: PartGate) -> Done:
        spec = self._spec
        key, offset, length, size = read.sample
        nbytes = 0
        try:
            check = (
                (lambda body, headers: self._check.check_span(key, offset, length, body))
                if spec.verify
                else None
            )
            nbytes, ttfb = await store.get(
                spec.bucket, key, size, gate, check, span=(offset, length)
            )
            return Done(nbytes, ttfb)
        finally:
            read.thread.release()
            read.batch.arrived(nbytes)

    def progress(self) -> UtilizationProgress:
        total = UtilizationProgress()
        for clock in self._clocks:
            total = total + clock.progress()
        return total

    def outcome(self) -> TransferOutcome:
        check = self._check
        return TransferOutcome(
            check.verified,
            check.failures,
            checks=dict(check.checks),
            training=tuple(e for clock in self._clocks for e in clock.epochs),
            buffered_peak=self._budget.peak,
        )


def transfer(spec: PhaseSpec, keys: Sequence[int], limits: ShareLimits, task_id: int) -> Train:
    return Train(spec, keys, limits.clock or time.perf_counter)


def training_spec(
    settings: Settings, dataset: Dataset, accelerators: int, run_id: str
) -> TrainingSpec:
    """The train phase's parameters for `accelerators` accelerators in the whole cluster."""

    def shuffle(kind: str) -> str | None:
        return {"off": None, "seed": str(dataset.seed), "random": f"{dataset.seed}:{run_id}"}[kind]

    return TrainingSpec(
        dataset,
        accelerators,
        settings.batch_size,
        settings.read_threads,
        settings.prefetch_size,
        settings.computation_time,
        settings.epochs,
        shuffle(settings.file_shuffle),
        shuffle(settings.sample_shuffle),
        settings.memory_budget,
        settings.exclude_start_steps,
        settings.exclude_end_steps,
    )


def dataset_of(settings: Settings, run: Run) -> Dataset:
    """The dataset a datagen writes and a train reads: this run's layout, from its settings
    and seed."""
    return Dataset(
        run_prefix(settings.prefix, run.run_id),
        settings.num_files_train,
        settings.num_samples_per_file,
        settings.record_length_bytes,
        settings.record_length_bytes_stdev,
        run.seed,
    )


class TrainStep:
    """A train phase; with `find_max_accelerators`, the search for the most accelerators per
    node whose AU stays at the threshold (each try a train phase of its own in the result)."""

    async def run(self, run: Run, index: int) -> None:
        settings = run.settings_for(index)
        if settings.source == Source.EXISTING:
            listed = await run.existing_keys(settings)
            dataset = Dataset.existing(listed, settings.num_samples_per_file)
        else:
            dataset = dataset_of(settings, run)
        if settings.find_max_accelerators:
            await self._search(run, settings, dataset)
        else:
            await self._train(run, settings, dataset)

    async def _search(self, run: Run, settings: Settings, dataset: Dataset) -> None:
        """Each try a one-epoch train phase at a count of accelerators per node."""
        nodes = len(run.executor.nodes)
        most = dataset.samples // (settings.batch_size * nodes)
        if most < 1:
            self._refuse(dataset, settings, nodes)

        async def holds(count: int) -> bool:
            tried = settings.derive(accelerators_per_node=count, epochs=1)
            return bool((await self._train(run, tried, dataset)).passed)

        await most_that_hold(holds, most, lambda: run.executor.interrupted)

    def _refuse(self, dataset: Dataset, settings: Settings, accelerators: int) -> None:
        raise ConfigError(
            f"train: {dataset.samples} samples cannot fill one step of batch_size "
            f"{settings.batch_size} on {accelerators} accelerators; write more files "
            "(num_files_train) or lower batch_size or accelerators_per_node"
        )

    async def _train(self, run: Run, settings: Settings, dataset: Dataset) -> TrainingResult:
        accelerators = settings.accelerators_per_node * len(run.executor.nodes)
        training = training_spec(settings, dataset, accelerators, run.run_id)
        if training.steps < 1:
            self._refuse(dataset, settings, accelerators)
        left_out = settings.exclude_start_steps + settings.exclude_end_steps
        if training.steps <= left_out:
            raise ConfigError(
                f"train: an epoch of {training.steps} steps on {accelerators} accelerators "
                f"leaves none for AU to count once the first {settings.exclude_start_steps} and "
                f"last {settings.exclude_end_steps} are left out (exclude_start_steps, "
                "exclude_end_steps, as DLIO does): write more files (num_files_train), or lower "
                "batch_size or accelerators_per_node"
            )
        refuse_a_batch_over_budget(settings, dataset.largest_sample)
        existing = settings.source == Source.EXISTING
        spec = spec_of(run, settings, Phase.TRAIN, existing=existing, training=training)
        steps = training.steps

        def described(result: PhaseResult) -> PhaseResult:
            measured = result.training or TrainingResult()
            return replace(
                result,
                training=replace(
                    measured,
                    accelerators=accelerators,
                    batch_size=settings.batch_size,
                    computation_time_s=settings.computation_time,
                    steps_per_epoch=steps,
                    dropped_per_epoch=dataset.samples - steps * settings.batch_size * accelerators,
                    au_threshold=settings.au_threshold,
                    memory_budget=settings.memory_budget,
                    exclude_start_steps=settings.exclude_start_steps,
                    exclude_end_steps=settings.exclude_end_steps,
                    searching=settings.find_max_accelerators,
                ),
            )

        await run_recorded(run, spec, range(accelerators), described)
        return run.phases[-1].training or TrainingResult()


TRAIN = TrainStep()


class Datagen:
    """DATAGEN: write the training set (deterministic content, multipart above the part size).
    It stays after the run unless a cleanup phase removes it, so one datagen serves many train
    runs (give them its run_id)."""

    async def run(self, run: Run, index: int) -> None:
        settings = run.settings_for(index)
        spec = spec_of(run, settings, Phase.DATAGEN)
        await run_recorded(run, spec, dataset_of(settings, run).file_list())


DATAGEN = Datagen()

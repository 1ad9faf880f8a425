"""The training set a train phase reads, laid out as DLIO lays it out: files of samples.

A generated dataset is `num_files_train` files `data-NNNNNNNN` under the run's prefix, each of
`num_samples_per_file` samples whose sizes are drawn (normal, within three deviations, at least
one byte) from the seed and the file's number, so every process computes the same layout and
no listing or HEAD is ever needed to know where a sample lies. Existing files (a listing or a
manifest) are split into `num_samples_per_file` records of equal size.

Every epoch visits the samples in an order made from the seed and the epoch: files shuffled
(`file_shuffle`), then samples shuffled across files (`sample_shuffle`), then cut into batches
dealt to the accelerators in turn, steps rounded down as DLIO rounds them.
"""

from __future__ import annotations

import math
import random
from array import array
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import NamedTuple

from s3dlio_ray._internal.model.keys import ListedKeys

DEVIATIONS = 3
"""Drawn sample sizes stay within this many standard deviations of the mean."""


def sample_sizes(mean: int, stdev: int) -> tuple[int, int]:
    """The smallest and largest size a sample of this mean and deviation is drawn at."""
    return max(1, mean - DEVIATIONS * stdev), mean + DEVIATIONS * stdev


class SampleRead(NamedTuple):
    """One sample: the file holding it, where in the file, and how many bytes."""

    key: str
    offset: int
    length: int
    file_size: int

    def __str__(self) -> str:
        return f"{self.key}@{self.offset}"


@dataclass(frozen=True)
class Dataset:
    """Where every sample is, computed from the layout alone."""

    prefix: str
    files: int
    samples_per_file: int
    record_length: int
    record_stdev: int = 0
    seed: int = 0
    listed: ListedKeys | None = None
    """Existing files (names and sizes) in place of generated ones."""
    _offsets: dict[int, array] = field(default_factory=dict, compare=False, repr=False)

    @classmethod
    def existing(cls, listed: ListedKeys, samples_per_file: int) -> Dataset:
        sizes = listed.sizes
        largest = max(sizes) if len(sizes) else 0
        return cls("", len(listed), samples_per_file, -(-largest // samples_per_file), 0, 0, listed)

    @property
    def samples(self) -> int:
        return self.files * self.samples_per_file

    @property
    def largest_sample(self) -> int:
        return sample_sizes(self.record_length, self.record_stdev)[1]

    def key(self, file: int) -> str:
        if self.listed is not None:
            return self.listed.keys[file]
        return f"{self.prefix}data-{file:08d}"

    def _sample_sizes(self, file: int) -> list[int]:
        count = self.samples_per_file
        if self.listed is not None:
            size, extra = divmod(self.listed.sizes[file], count)
            return [size + (1 if i < extra else 0) for i in range(count)]
        if not self.record_stdev:
            return [self.record_length] * count
        low, high = sample_sizes(self.record_length, self.record_stdev)
        first = file * count
        return [
            min(max(round(self.record_length + self.record_stdev * z), low), high)
            for z in (_normal(self.seed, first + i) for i in range(count))
        ]

    def _offsets_of(self, file: int) -> array:
        """Where each sample of the file starts, and its end; kept for multi-sample files (a
        one-sample file's is made again: a dataset of millions of them holds nothing per file)."""
        if self.samples_per_file == 1:
            return array("q", [0, self._sample_sizes(file)[0]])
        offsets = self._offsets.get(file)
        if offsets is None:
            offsets = array("q", [0])
            for size in self._sample_sizes(file):
                offsets.append(offsets[-1] + size)
            self._offsets[file] = offsets
        return offsets

    def file_size(self, file: int) -> int:
        return self._offsets_of(file)[-1]

    def sample(self, index: int) -> SampleRead:
        file, within = divmod(index, self.samples_per_file)
        offsets = self._offsets_of(file)
        start = offsets[within]
        return SampleRead(self.key(file), start, offsets[within + 1] - start, offsets[-1])

    def file_list(self) -> ListedKeys:
        """Every file with its size: what a datagen writes."""
        return ListedKeys(
            [self.key(f) for f in range(self.files)], [self.file_size(f) for f in range(self.files)]
        )


_MASK = (1 << 64) - 1


def _mix(value: int) -> int:
    """splitmix64's finalizer: a 64-bit integer hash whose bits all depend on every input bit."""
    value = (value ^ (value >> 30)) * 0xBF58476D1CE4E5B9 & _MASK
    value = (value ^ (value >> 27)) * 0x94D049BB133111EB & _MASK
    return value ^ (value >> 31)


def _normal(seed: int, index: int) -> float:
    """A standard normal draw for sample `index` of the seed's dataset (Box-Muller on two hashed
    uniforms): the same in every process, and a microsecond where seeding a generator per
    file costs eighty."""
    bits = _mix((seed * 0x9E3779B97F4A7C15 + index) & _MASK)
    u1 = ((bits >> 11) + 1) / (1 << 53)
    u2 = (_mix(bits) >> 11) / (1 << 53)
    return math.sqrt(-2.0 * math.log(u1)) * math.cos(2.0 * math.pi * u2)


def epoch_order(
    dataset: Dataset, epoch: int, file_shuffle: str | None, sample_shuffle: str | None
) -> list[int]:
    """Every sample's index once, in the order of `epoch`. A shuffle is seeded by its name
    (None: no shuffle) and the epoch, so each epoch differs and the same seed repeats them."""
    files = list(range(dataset.files))
    if file_shuffle is not None:
        random.Random(f"files:{file_shuffle}:{epoch}").shuffle(files)
    per_file = dataset.samples_per_file
    order = files if per_file == 1 else [f * per_file + s for f in files for s in range(per_file)]
    if sample_shuffle is not None:
        random.Random(f"samples:{sample_shuffle}:{epoch}").shuffle(order)
    return order


def steps_per_epoch(samples: int, batch_size: int, accelerators: int) -> int:
    """DLIO's steps: whole batches for every accelerator; the remainder is not read."""
    return samples // (batch_size * accelerators)


def batches(
    order: Sequence[int], rank: int, accelerators: int, batch_size: int, steps: int
) -> list[Sequence[int]]:
    """Accelerator `rank`'s batches of an epoch: batch k of the order goes to rank k mod
    accelerators, for the first `steps` steps."""
    return [
        order[
            (step * accelerators + rank) * batch_size : (step * accelerators + rank + 1)
            * batch_size
        ]
        for step in range(steps)
    ]

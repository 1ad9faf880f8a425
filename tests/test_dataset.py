"""The training set's layout and each epoch's order: pure logic, no server."""

from __future__ import annotations

from collections import Counter

import pytest

from s3dlio_ray._internal.model.dataset import Dataset, batches, epoch_order, steps_per_epoch
from s3dlio_ray._internal.model.keys import ListedKeys
from s3dlio_ray._internal.storage.journal import owned_key


def test_samples_lie_end_to_end_in_their_files_and_the_layout_repeats_from_the_seed():
    dataset = Dataset("p/r/", files=5, samples_per_file=7, record_length=1000, record_stdev=300)
    again = Dataset("p/r/", files=5, samples_per_file=7, record_length=1000, record_stdev=300)
    other_seed = Dataset("p/r/", 5, 7, 1000, 300, seed=1)
    sizes = [dataset.sample(i).length for i in range(dataset.samples)]
    assert sizes == [again.sample(i).length for i in range(35)]
    assert sizes != [other_seed.sample(i).length for i in range(35)]
    assert len(set(sizes)) > 10 and all(100 <= s <= 1900 for s in sizes)
    for file in range(5):
        reads = [dataset.sample(file * 7 + s) for s in range(7)]
        assert {r.key for r in reads} == {f"p/r/data-{file:08d}"}
        assert [r.offset for r in reads] == [sum(x.length for x in reads[:i]) for i in range(7)]
        assert reads[-1].offset + reads[-1].length == dataset.file_size(file) == reads[0].file_size
    files = dataset.file_list()
    assert list(files.sizes) == [dataset.file_size(f) for f in range(5)]
    assert all(owned_key("p", "r").fullmatch(key) for key in files)


def test_a_fixed_size_is_exact_and_existing_files_split_evenly():
    fixed = Dataset("p/", files=2, samples_per_file=3, record_length=100)
    assert [fixed.sample(i) for i in range(3)] == [
        ("p/data-00000000", 0, 100, 300),
        ("p/data-00000000", 100, 100, 300),
        ("p/data-00000000", 200, 100, 300),
    ]
    existing = Dataset.existing(ListedKeys(["a", "b"], [10, 7]), samples_per_file=3)
    assert [existing.sample(i)[1:3] for i in range(6)] == [
        (0, 4),
        (4, 3),
        (7, 3),
        (0, 3),
        (3, 2),
        (5, 2),
    ]
    assert existing.largest_sample == 4


@pytest.mark.parametrize("file_shuffle, sample_shuffle", [(None, None), ("7", None), ("7", "7")])
def test_every_epoch_reads_every_sample_once_and_shuffles_by_seed_and_epoch(
    file_shuffle, sample_shuffle
):
    dataset = Dataset("p/", files=12, samples_per_file=5, record_length=10)
    orders = [epoch_order(dataset, e, file_shuffle, sample_shuffle) for e in (1, 2)]
    for order in orders:
        assert sorted(order) == list(range(60))
    assert orders[0] == epoch_order(dataset, 1, file_shuffle, sample_shuffle)
    if file_shuffle is None:
        assert orders[0] == orders[1] == list(range(60))
    else:
        assert orders[0] != orders[1]
    if file_shuffle and not sample_shuffle:
        # file shuffle alone keeps each file's samples together and in order
        blocks = [orders[0][i : i + 5] for i in range(0, 60, 5)]
        assert all(block == list(range(block[0], block[0] + 5)) for block in blocks)
        assert all(block[0] % 5 == 0 for block in blocks)


def test_steps_round_down_and_the_accelerators_share_the_epoch_exactly():
    assert steps_per_epoch(60, 4, 3) == 5
    assert steps_per_epoch(59, 4, 3) == 4  # 11 samples dropped, as DLIO drops them
    order = list(range(59))
    dealt = [batches(order, rank, 3, 4, 4) for rank in range(3)]
    read = Counter(i for per_rank in dealt for batch in per_rank for i in batch)
    assert all(len(b) == 4 for per_rank in dealt for b in per_rank)
    assert set(read.values()) == {1} and len(read) == 48
    assert dealt[1][0] == [4, 5, 6, 7] and dealt[0][1] == [12, 13, 14, 15]

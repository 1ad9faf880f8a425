"""Object sizes: fixed or drawn per key, the same answer everywhere, exact down to one byte."""

import math
import statistics

import pytest

from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.storage.store import BufferPool

KEYS = [f"run/obj-{i:08d}" for i in range(20_000)]


def test_fixed_is_the_size_for_every_key():
    sizes = ObjectSizes.fixed(100)
    assert {sizes.of(k) for k in KEYS[:100]} == {100}


def test_a_key_always_gets_the_same_size():
    a, b = ObjectSizes("log-uniform", 1, 1 << 20), ObjectSizes("log-uniform", 1, 1 << 20)
    assert [a.of(k) for k in KEYS[:500]] == [b.of(k) for k in KEYS[:500]]


def test_uniform_covers_the_bounds_evenly():
    sizes = [ObjectSizes("uniform", 1000, 2000).of(k) for k in KEYS]
    assert min(sizes) >= 1000 and max(sizes) <= 2000
    assert min(sizes) < 1010 and max(sizes) > 1990
    assert abs(statistics.mean(sizes) - 1500) < 10
    quarters = [sum(lo <= s < lo + 250 for s in sizes) / len(sizes) for lo in (1000, 1250, 1500)]
    assert all(abs(q - 0.25) < 0.02 for q in quarters)


def test_log_uniform_spreads_evenly_over_powers_of_two():
    lo, hi = 4096, 64 * 2**20
    sizes = [ObjectSizes("log-uniform", lo, hi).of(k) for k in KEYS]
    assert min(sizes) >= lo and max(sizes) <= hi
    # 14 octaves: each holds about 1/14 of the objects, and the median is the geometric mean.
    octaves = [sum(lo * 2**i <= s < lo * 2 ** (i + 1) for s in sizes) for i in range(14)]
    assert all(abs(n / len(sizes) - 1 / 14) < 0.015 for n in octaves), octaves
    assert abs(math.log2(statistics.median(sizes)) - math.log2(math.sqrt(lo * hi))) < 0.2


def test_small_sizes_are_exact_not_rounded_to_a_block():
    sizes = {ObjectSizes("uniform", 1, 4095).of(k) for k in KEYS}
    assert len(sizes) > 3500
    assert any(s % 512 for s in sizes)
    assert {ObjectSizes("log-uniform", 1, 3).of(k) for k in KEYS[:200]} == {1, 2, 3}


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("4KiB", ObjectSizes.fixed(4096)),
        (100, ObjectSizes.fixed(100)),
        ("uniform:1KiB..2KiB", ObjectSizes("uniform", 1024, 2048)),
        ("log-uniform:4KiB..64MiB", ObjectSizes("log-uniform", 4096, 64 * 2**20)),
        ({"distribution": "log-uniform", "min": "1KiB", "max": "1MiB"}, None),
        ({"distribution": "fixed", "min": "1KiB"}, ObjectSizes.fixed(1024)),
    ],
)
def test_settings_read_a_size_or_a_distribution(value, expected):
    settings = load_settings(overrides={"object_size": value}, environ={})
    assert settings.object_size == (expected or ObjectSizes("log-uniform", 1024, 2**20))


def test_describe_names_the_distribution():
    assert ObjectSizes.fixed(10).describe() == "10"
    assert ObjectSizes("uniform", 1, 9).describe() == "uniform:1..9"


@pytest.mark.parametrize(
    ("size", "capacity"), [(0, 1), (7, 7), (10 * 2**20, 10 * 2**20), (2**20 + 1, 2**20 + 2**17)]
)
def test_buffer_capacities_are_shared_steps_with_little_spare(size, capacity):
    assert BufferPool.capacity(size) == capacity


def test_buffer_capacity_never_wastes_more_than_an_eighth():
    for size in range(1, 70_000, 7):
        capacity = BufferPool.capacity(size)
        assert size <= capacity <= size * 1.125


def test_the_buffer_pool_keeps_at_most_its_budget():
    pool = BufferPool(keep_bytes=3 * 4096)
    buffers = [pool.acquire(4096) for _ in range(5)]
    for buffer in buffers:
        pool.release(buffer)
    assert pool.pooled_bytes == 3 * 4096
    reused = pool.acquire(4000)
    assert any(reused is b for b in buffers[:3])

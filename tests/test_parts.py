import pytest

from s3dlio_ray._internal.tuning.parts import (
    GIB,
    MAX_PARTS,
    MIB,
    TIB,
    ObjectTooLargeError,
    calculate_optimal_part_size,
    part_count,
    part_ranges,
)


def test_default_is_10_mib():
    assert calculate_optimal_part_size(64 * MIB) == 10 * MIB


def test_target_is_clamped_to_s3_limits():
    assert calculate_optimal_part_size(100 * MIB, target=1 * MIB) == 5 * MIB
    assert calculate_optimal_part_size(100 * GIB, target=8 * GIB) == 5 * GIB


def test_part_size_grows_to_fit_10000_parts():
    size = 200 * GIB
    part = calculate_optimal_part_size(size)
    assert part > 10 * MIB
    assert part % MIB == 0
    assert part_count(size, part) <= MAX_PARTS
    assert part_count(size, part - MIB) > MAX_PARTS


def test_largest_object_fits():
    part = calculate_optimal_part_size(5 * TIB)
    assert part_count(5 * TIB, part) <= MAX_PARTS
    assert part <= 5 * GIB


def test_object_over_5_tib_is_refused_clearly():
    with pytest.raises(ObjectTooLargeError, match="5 TiB"):
        calculate_optimal_part_size(5 * TIB + 1)


def test_part_ranges_cover_the_object_exactly():
    ranges = part_ranges(64 * MIB, 10 * MIB)
    assert len(ranges) == 7
    assert ranges[-1] == (60 * MIB, 4 * MIB)
    assert sum(n for _, n in ranges) == 64 * MIB
    assert part_ranges(0, 10 * MIB) == [(0, 0)]

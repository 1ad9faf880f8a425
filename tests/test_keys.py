"""Key spaces by index: a KeyRange answers what the list of its names would, and costs what a
few spans cost however many keys it names."""

import pickle
import tracemalloc

import pytest

from s3dlio_ray._internal.live.executor import successful_writes
from s3dlio_ray._internal.model.keys import (
    KeyRange,
    ListedKeys,
    Span,
    repeated,
    run_prefix,
    with_sizes,
)
from s3dlio_ray._internal.model.results import ShareResult
from s3dlio_ray._internal.model.sharding import shard
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.stats import OpStats
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.journal import owned_key


def names(prefix, indices, round_=0):
    suffix = f".{round_}" if round_ else ""
    return [f"{prefix}obj-{i:08d}{suffix}" for i in indices]


def test_a_range_reads_like_the_list_of_its_names():
    keys = KeyRange.of("data", "run1", 25)
    expected = names("data/run1/", range(25))
    assert list(keys) == expected
    assert len(keys) == 25
    assert [keys[i] for i in range(-25, 25)] == expected + expected
    assert list(keys[3:11]) == expected[3:11]
    assert list(keys[20:90]) == expected[20:]
    assert expected[7] in keys and "data/run1/obj-00000025" not in keys
    with pytest.raises(IndexError):
        keys[25]


@pytest.mark.parametrize(("count", "parts"), [(0, 3), (1, 3), (10, 3), (100, 7), (5, 5)])
def test_shares_of_a_range_are_ranges_covering_every_key_once(count, parts):
    keys = KeyRange.of("", "r", count)
    shares = shard(keys, parts)
    assert all(isinstance(share, KeyRange) for share in shares)
    assert [k for share in shares for k in share] == list(keys)
    assert KeyRange.joined(keys.prefix, shares) == keys


def test_a_share_pickles_to_the_same_size_whatever_its_object_count():
    sizes = {len(pickle.dumps(shard(KeyRange.of("p", "r", n), 4)[1])) for n in (100, 10**6, 10**9)}
    assert max(sizes) - min(sizes) <= 8
    assert max(sizes) < 300
    assert list(pickle.loads(pickle.dumps(KeyRange.of("p", "r", 9)[2:5]))) == names(
        "p/r/", range(2, 5)
    )


def test_what_a_timed_put_stored_is_its_rounds_less_its_failures():
    share = KeyRange.of("p", "r", 1000)[10:14]
    failed = {"p/r/obj-00000011.1": "503", "p/r/obj-00000012": "reset"}
    stored = successful_writes(
        share, ShareResult(Phase.PUT, 1.0, OpStats(), dispatched=10, failed=failed)
    )
    expected = names("p/r/", range(10, 14)) + names("p/r/", range(10, 14), 1)[:4]
    expected += names("p/r/", range(10, 12), 2)
    assert list(stored) == [k for k in expected if k not in failed]
    assert all(owned_key("p", "r").fullmatch(k) for k in stored)


def test_key_names_grow_past_eight_digits_and_stay_the_runs_own():
    keys = KeyRange.of("p", "r", 10**9)
    assert keys[-1] == "p/r/obj-999999999"
    assert owned_key("p", "r").fullmatch(keys[-1])
    assert keys[-1] in keys


def test_the_drivers_key_structures_for_a_million_objects_fit_in_a_few_kilobytes():
    tracemalloc.start()
    try:
        before = tracemalloc.take_snapshot()
        keys = KeyRange.of("bench", "run", 1_000_000)
        shares = shard(keys, 64)
        stored = KeyRange.joined(
            keys.prefix,
            [
                successful_writes(s, ShareResult(Phase.PUT, 1.0, OpStats(), dispatched=len(s)))
                for s in shares
            ],
        )
        after = tracemalloc.take_snapshot()
        grown = sum(stat.size_diff for stat in after.compare_to(before, "filename"))
    finally:
        tracemalloc.stop()
    assert len(stored) == 1_000_000
    assert grown < 64 * 1024


def test_listed_objects_keep_their_sizes_through_shares_and_repeats():
    listed = ListedKeys(["a", "b", "c"], [1, 22, 333])
    first, second = shard(listed, 2)
    assert isinstance(second, ListedKeys)
    assert list(with_sizes(second, ObjectSizes.fixed(0))) == [("c", 333)]
    assert [s.key for s in repeated(first, ObjectSizes.fixed(0), 3)] == ["a", "b"] * 3
    assert pickle.loads(pickle.dumps(listed)).sizes.tolist() == [1, 22, 333]
    assert [s.size for s in with_sizes(KeyRange("p/", [Span(0, 2)]), ObjectSizes.fixed(9))] == [
        9,
        9,
    ]
    assert run_prefix("", "r") == "r/"


def test_key_bounds_hold_a_runs_numbered_keys_and_nothing_past_them():
    from s3dlio_ray._internal.model.keys import KeyBounds

    bounds = KeyBounds(objects=60, files=12)
    assert bounds.hold("obj-00000059") and bounds.hold("obj-00000003.7")
    assert not bounds.hold("obj-00000060") and not bounds.hold("obj-00009999.1")
    assert bounds.hold("data-00000011") and not bounds.hold("data-00000012")
    assert bounds.hold("mixed-3-00000042") and bounds.hold("ckpt-0001-00002")
    assert KeyBounds().hold("obj-99999999"), "an old journal keeps no bounds"


def test_bounds_widen_to_the_larger_of_each_and_none_wins():
    from s3dlio_ray._internal.model.keys import KeyBounds

    assert KeyBounds(60, 0).widened(KeyBounds(3, 18)) == KeyBounds(60, 18)
    assert KeyBounds(60, 0).widened(KeyBounds(None, 18)) == KeyBounds(None, 18)


def test_key_bounds_hold_later_rounds_and_mixed_keys_only_as_far_as_written():
    from s3dlio_ray._internal.model.keys import KeyBounds

    bounds = KeyBounds(objects=60, files=0, rounds=2, mixed=(4, 100))
    assert bounds.hold("obj-00000059.2") and not bounds.hold("obj-00000059.3")
    assert bounds.hold("mixed-3-00000099")
    assert not bounds.hold("mixed-4-00000000") and not bounds.hold("mixed-3-00000100")
    unbounded = KeyBounds(objects=60)
    assert unbounded.hold("obj-00000001.999") and unbounded.hold("mixed-999-99999999")
    none_written = KeyBounds(objects=60, rounds=0, mixed=(0, 0))
    assert not none_written.hold("obj-00000001.1") and not none_written.hold("mixed-0-00000000")
    assert bounds.widened(KeyBounds(60, 0, 5, (2, 300))) == KeyBounds(60, 0, 5, (4, 300))
    assert bounds.widened(unbounded) == KeyBounds(60, None, None, None)
    shards = KeyBounds(checkpoints=(2, 3))
    assert shards.hold("ckpt-0001-00002") and not shards.hold("ckpt-0002-00000")
    assert not shards.hold("ckpt-0000-00003") and KeyBounds().hold("ckpt-9999-99999")

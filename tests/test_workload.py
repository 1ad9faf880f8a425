import pytest

from s3dlio_ray._internal.model.content import POOL_SIZE, ObjectData, VerificationError
from s3dlio_ray._internal.model.keys import KeyRange


def test_content_is_deterministic_per_seed_and_key():
    a, b = ObjectData(5), ObjectData(5)
    assert a.content("k1", 100_000) == b.content("k1", 100_000)
    assert a.content("k1", 100_000) != a.content("k2", 100_000)
    assert a.content("k1", 100_000) != ObjectData(6).content("k1", 100_000)


@pytest.mark.parametrize("size", [0, 1, 31, 32, 33, 4096, POOL_SIZE + 1000, 3 * POOL_SIZE + 7])
def test_segments_at_any_offset_match_the_whole(size):
    data = ObjectData(1)
    whole = data.content("key", size)
    assert len(whole) == size
    for offset in (0, 5, 32, size // 3, max(0, size - 10)):
        length = min(size - offset, 5 * 1024 * 1024)
        piece = b"".join(data.segments("key", offset, length))
        assert piece == whole[offset : offset + length]
    data.verify("key", memoryview(bytearray(whole)), size)


def test_verification_catches_every_kind_of_damage():
    data = ObjectData(2)
    size = POOL_SIZE * 2 + 100
    good = bytearray(data.content("a", size))
    flipped = bytearray(good)
    flipped[size - 1] ^= 0x01
    expected = f"byte {size - 1} differs from what was written .read 0x{flipped[-1]:02x}, "
    with pytest.raises(VerificationError, match=expected):
        data.verify("a", memoryview(flipped), size)
    with pytest.raises(VerificationError, match="read 99 bytes, expected 100"):
        data.verify("a", memoryview(good[:99]), 100)
    with pytest.raises(VerificationError, match=r"byte \d+ differs"):
        data.verify("b", memoryview(good), size)  # another key's object
    shifted = bytearray(b"\0") + good[:-1]
    first = next(i for i, (x, y) in enumerate(zip(shifted, good, strict=True)) if x != y)
    with pytest.raises(VerificationError, match=f"byte {first} differs"):
        data.verify("a", memoryview(shifted), size)


def test_keys_live_under_the_run_prefix():
    keys = list(KeyRange.of("s3dlio-ray/", "run1", 3))
    assert keys == [
        "s3dlio-ray/run1/obj-00000000",
        "s3dlio-ray/run1/obj-00000001",
        "s3dlio-ray/run1/obj-00000002",
    ]


def test_key_pool_adds_discards_and_picks_only_what_it_holds():
    import random

    from s3dlio_ray._internal.execution.phases.mixed import KeyPool
    from s3dlio_ray._internal.model.sizes import ObjectSizes

    share = KeyRange.of("p", "r", 3)
    a, b, c = share
    pool = KeyPool(share, ObjectSizes.fixed(5))
    pool.add("p/r/mixed-0-00000000")
    pool.add("p/r/mixed-0-00000000")
    pool.discard(b)
    rng = random.Random(1)
    assert len(pool) == 3
    drawn = {pool.choice(rng) for _ in range(200)} - {None}
    assert {item.key for item in drawn} == {a, c, "p/r/mixed-0-00000000"}
    assert {item.size for item in drawn} == {5}
    for key in (a, c, "p/r/mixed-0-00000000"):
        pool.discard(key)
    assert len(pool) == 0

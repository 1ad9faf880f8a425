"""What a replay reads and plans, without a store: the three op-log formats told apart by
content, RFC 3339 times to the nanosecond, multipart rows folded, deletes resolved, lanes that
keep each key on one actor, and the open-loop record every report reads."""

from __future__ import annotations

import datetime
import random

import pytest
import zstandard

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.open_loop import (
    Arrival,
    Arrivals,
    OpenLoopStats,
    rate_errors,
)
from s3dlio_ray._internal.model.sharding import shard
from s3dlio_ray._internal.replay.formats import OWN, S3DLIO, WARP, Logged, merged, rfc3339_ns
from s3dlio_ray._internal.replay.logs import read_logs
from s3dlio_ray._internal.replay.plan import Mapped, OwnNames, Rewrite, plan
from s3dlio_ray._internal.storage.oplog import COLUMNS, OpLog
from s3dlio_ray._internal.storage.s3.client import RequestRecord

T0 = 1_790_000_000_000_000_000
HEADER = "\t".join(COLUMNS)


def tsv(*fields: object) -> str:
    return "\t".join(str(f) for f in fields)


def stamp(ns: int, digits: int = 9) -> str:
    moment = datetime.datetime.fromtimestamp(ns // 10**9, datetime.UTC)
    fraction = f"{ns % 10**9:09d}"[:digits].rstrip("0")
    return f"{moment:%Y-%m-%dT%H:%M:%S}" + (f".{fraction}" if fraction else "") + "Z"


def row(offset_ms: float, op: str, key: str, nbytes: int = 0, n: int = 1, failed=False):
    return Logged(T0 + int(offset_ms * 1e6), op, "b", key, nbytes, n, failed)


@pytest.mark.parametrize(
    ("text", "ns"),
    [
        ("2026-12-02T23:03:08.719134807Z", 1796252588719134807),
        ("2026-12-02T23:03:08.7Z", 1796252588700000000),
        ("2026-12-02T23:03:08Z", 1796252588000000000),
        ("2026-12-03T00:03:08.000000001+01:00", 1796252588000000001),
    ],
)
def test_times_are_read_to_the_nanosecond_in_any_zone(text, ns):
    assert rfc3339_ns(text) == ns


def test_this_tools_op_log_reads_back_as_written(tmp_path):
    log = OpLog(tmp_path / "ops.tsv.zst")
    for i, (operation, key) in enumerate(
        [
            ("PutObject", "k/a"),
            ("GetObject", "k/a"),
            ("HeadObject", "k/a"),
            ("DeleteObjects", "k/a"),
        ]
    ):
        start = T0 + i * 1_000_000
        record = RequestRecord(
            operation, f"s3://bkt/{key}", "http://h:1", start, None, start + 5, 7, 1, ""
        )
        log.record(record)
    log.close()
    (read,) = read_logs([log.path])
    assert read.format == OWN
    assert [(r.op, r.bucket, r.key, r.start_ns) for r in read.rows] == [
        (op, "bkt", "k/a", T0 + i * 1_000_000)
        for i, op in enumerate(["PUT", "GET", "HEAD", "DELETE"])
    ]


def warp_log(path, lines: list[str]) -> None:
    """warp's documented `.csv.zst`: its header with `cat`, Go's RFC3339Nano, CSV quoting of
    a field holding a tab or quote, `# ` comment lines after the operations."""
    text = HEADER + "\tcat\n" + "".join(line + "\n" for line in lines)
    text += "# warp get --duration 30s\n# host 127.0.0.1:9000\n"
    path.write_bytes(zstandard.ZstdCompressor().compress(text.encode()))


def test_warps_csv_zst_is_told_apart_by_content_and_comments_are_skipped(tmp_path):
    path = tmp_path / "warp-get-2026-12-02[230308]-AbCd.csv.zst"
    warp_log(
        path,
        [
            tsv(
                0,
                3,
                "PUT",
                "c1",
                1,
                4096,
                "127.0.0.1:9000",
                "AbC/1.rnd",
                "",
                stamp(T0, 6),
                "",
                stamp(T0 + 9),
                9,
                1,
            ),
            tsv(
                1,
                3,
                "GET",
                "c1",
                1,
                4096,
                "127.0.0.1:9000",
                "AbC/1.rnd",
                '"bad\tthing"',
                stamp(T0 + 5_000_000),
                "",
                stamp(T0 + 6_000_000),
                9,
                1,
            ),
        ],
    )
    (read,) = read_logs([path])
    assert read.format == WARP
    assert read.rows[0] == Logged(T0, "PUT", "", "AbC/1.rnd", 4096, 1, False)
    assert read.rows[1].failed and read.rows[1].start_ns == T0 + 5_000_000


def test_s3dlios_log_is_told_apart_by_its_endpoint_and_bucket_in_the_path(tmp_path):
    lines = [
        HEADER,
        tsv(
            0,
            18147521187885925800,
            "PUT",
            "",
            1,
            2000,
            "s3://bkt1",
            "bkt1/a/two.bin",
            "",
            stamp(T0),
            stamp(T0),
            stamp(T0 + 9),
            9,
        ),
        tsv(
            1,
            7364705619221056123,
            "LIST",
            "",
            2,
            0,
            "s3://bkt1",
            "bkt1/a/",
            "",
            stamp(T0 + 10),
            "",
            stamp(T0 + 19),
            9,
        ),
    ]
    path = tmp_path / "s3dlio.tsv"
    path.write_text("\n".join(lines) + "\n")
    (read,) = read_logs([path])
    assert read.format == S3DLIO
    assert [(r.op, r.bucket, r.key) for r in read.rows] == [
        ("PUT", "bkt1", "a/two.bin"),
        ("LIST", "bkt1", "a/"),
    ]


def test_a_file_that_is_no_op_log_is_one_clear_error(tmp_path):
    path = tmp_path / "notes.txt"
    path.write_text("hello\tworld\n")
    with pytest.raises(ConfigError, match=r"notes\.txt: not an op-log"):
        read_logs([path])
    with pytest.raises(ConfigError, match="no such op-log file"):
        read_logs([tmp_path / "missing.tsv.zst"])


def test_several_files_merge_by_start_time():
    a = [row(0, "PUT", "x"), row(20, "GET", "x")]
    b = [row(10, "PUT", "y")]
    from s3dlio_ray._internal.replay.formats import LogFile

    rows = list(merged([LogFile("a", OWN, tuple(a)), LogFile("b", OWN, tuple(b))]))
    assert [r.key for r in rows] == ["x", "y", "x"]


def test_a_multipart_upload_replays_as_one_put_of_its_summed_size_at_its_start():
    rows = [
        row(0, "CreateMultipartUpload", "big"),
        row(1, "PUT", "big", 5),
        row(2, "PUT", "big", 5),
        row(3, "PUT", "big", 2),
        row(9, "CompleteMultipartUpload", "big"),
        row(10, "GET", "big", 12),
        row(20, "CreateMultipartUpload", "gone"),
        row(21, "PUT", "gone", 5),
        row(22, "AbortMultipartUpload", "gone"),
    ]
    made = plan(rows, OwnNames("p/"))
    assert made.planned == {"PUT": 1, "GET": 1}
    assert made.planned_bytes == {"PUT": 12, "GET": 12}
    ((put, get),) = made.lanes
    assert (put.op, put.at_s, put.size, put.key) == ("PUT", 0.0, 12, "p/replay-00000000")
    assert (get.op, get.size) == ("GET", 12)
    assert made.skipped == {"aborted multipart upload": 1}


def test_failed_and_unknown_requests_are_left_out_and_counted():
    rows = [row(0, "PUT", "a", 3), row(1, "GET", "a", 3, failed=True), row(2, "CreateBucket", "")]
    made = plan(rows, OwnNames("p/"))
    assert made.planned == {"PUT": 1}
    assert made.skipped == {"failed GET": 1, "CreateBucket (not replayed)": 1}


def test_reads_before_writes_are_needed_first_and_deletes_resolve_to_named_keys():
    rows = [
        row(0, "GET", "old", 50),
        row(1, "PUT", "d/1", 1),
        row(2, "PUT", "d/2", 1),
        row(3, "PUT", "e/1", 1),
        row(4, "DELETE", "d/", n=2),
        row(5, "DELETE", "e/1"),
    ]
    made = plan(rows, OwnNames("p/"))
    assert made.needed == {"p/replay-00000000": 50}
    deletes = sorted((op.row, op.key) for lane in made.lanes for op in lane if op.op == "DELETE")
    assert [key for _, key in deletes] == [
        "p/replay-00000001",
        "p/replay-00000002",
        "p/replay-00000003",
    ]
    assert len({r for r, _ in deletes}) == 2
    assert made.planned["DELETE"] == 2 and made.splits == 1


def test_lanes_keep_every_key_on_one_share_in_order_whatever_the_shares():
    rng = random.Random(7)
    keys = [f"k{i}" for i in range(40)]
    rows = sorted(
        (
            row(rng.uniform(0, 5000), rng.choice(["PUT", "GET", "HEAD"]), rng.choice(keys), 10)
            for _ in range(800)
        ),
        key=lambda r: r.start_ns,
    )
    made = plan(rows, OwnNames("p/"))
    for parts in (1, 3, 7):
        owners: dict[str, int] = {}
        for index, share in enumerate(shard(made.lanes, parts)):
            for lane in share:
                times = [op.at_s for op in lane]
                assert times == sorted(times)
                for op in lane:
                    assert owners.setdefault(op.key, index) == index
    assert sum(made.per_second) == made.operations == 800


def test_speed_divides_every_offset():
    rows = [row(0, "PUT", "a", 1), row(1000, "GET", "a", 1), row(3000, "HEAD", "a")]
    slow, fast = plan(rows, OwnNames("p/")), plan(rows, OwnNames("p/"), speed=4)
    assert [op.at_s for op in slow.lanes[0]] == [0.0, 1.0, 3.0]
    assert [op.at_s for op in fast.lanes[0]] == [0.0, 0.25, 0.75]
    assert slow.per_second == [1, 1, 0, 1] and fast.per_second == [3]
    with pytest.raises(ConfigError, match="speed"):
        plan(rows, OwnNames("p/"), speed=0)


def test_existing_data_is_read_where_the_rewrite_points_and_a_log_that_writes_is_refused():
    rows = [row(0, "GET", "data/x.bin", 9), row(1, "HEAD", "other/y")]
    made = plan(rows, Mapped([Rewrite.parse("b/data/=train/")]), existing=True)
    assert sorted(op.key for lane in made.lanes for op in lane) == ["other/y", "train/x.bin"]
    assert all(op.size == -1 for lane in made.lanes for op in lane if op.op == "GET")
    with pytest.raises(ConfigError, match="--existing"):
        plan([row(0, "PUT", "x", 1)], Mapped([]), existing=True)
    with pytest.raises(ConfigError, match="OLD=NEW"):
        Rewrite.parse("nothing")


def test_constant_arrivals_are_evenly_spaced_and_poisson_ones_keep_their_mean_rate():
    constant = Arrivals(Arrival("constant", 100), seed=1)
    assert [round(constant.due(None), 6) for _ in range(3)] == [0.0, 0.01, 0.02]
    poisson = Arrivals(Arrival("poisson", 200), seed=1)
    times = [poisson.due(None) for _ in range(20_000)]
    assert times == sorted(times)
    assert 190 < len(times) / times[-1] < 210
    assert Arrival.parse({"poisson": "200/s"}) == Arrival("poisson", 200)
    assert Arrival.parse({"constant": 50}).share(4) == Arrival("constant", 12.5)
    for bad in ({"burst": 3}, {"constant": 0}, "200", {"poisson": "fast"}):
        with pytest.raises(ValueError):
            Arrival.parse(bad)


def test_open_loop_stats_merge_exactly_and_round_trip():
    a, b = OpenLoopStats(), OpenLoopStats()
    a.record("GET", 0.001, 0.020, 0)
    a.record("GET", 0.050, 0.020, 1)
    b.record("PUT", -0.001, 0.030, 3)
    b.capped = 2
    a.merge(b)
    assert (a.sent, a.behind, a.capped, a.sent_per_s) == (3, 1, 2, [1, 1, 0, 1])
    assert a.response["GET"].max_s == pytest.approx(0.070)
    assert a.lateness.min_s == 0.0
    assert OpenLoopStats.from_dict(a.to_dict()).to_dict() == a.to_dict()


def test_rate_errors_compare_full_seconds_with_enough_scheduled():
    assert rate_errors([100, 100, 5, 100, 40], [98, 103, 5, 100, 40]) == pytest.approx(
        [-0.02, 0.03, 0.0]
    )

"""The op-log: columns users of s3dlio and warp know, streamed to disk, one line per request."""

from __future__ import annotations

import asyncio
import csv
import datetime
import io

import zstandard
from conftest import TEST_CREDENTIALS, settings_for

from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.storage.oplog import COLUMNS, OpLog, oplog_path
from s3dlio_ray._internal.storage.s3.client import RequestRecord


def read_oplog(path) -> list[dict[str, str]]:
    with path.open("rb") as raw:
        text = zstandard.ZstdDecompressor().stream_reader(raw).read().decode()
    reader = csv.DictReader(io.StringIO(text), delimiter="\t")
    assert tuple(reader.fieldnames) == COLUMNS
    return list(reader)


def when(text: str) -> datetime.datetime:
    return datetime.datetime.fromisoformat(text.replace("Z", "+00:00")[:26])


def test_each_process_gets_its_own_file_beside_the_path_asked_for(tmp_path):
    assert oplog_path(tmp_path / "ops.tsv.zst", "host-42") == tmp_path / "ops-host-42.tsv.zst"


def test_lines_reach_the_disk_while_the_log_is_open(tmp_path):
    log = OpLog(tmp_path / "ops.tsv.zst")
    start = 1_790_000_000_000_000_000
    for i in range(100_000):
        log.record(
            RequestRecord(
                "PutObject",
                f"s3://b/k{i}",
                "http://127.0.0.1:9",
                start,
                None,
                start + 5_000,
                4096,
                1,
                "",
            )
        )
    written_before_close = log.path.stat().st_size
    log.close()
    assert written_before_close > 0
    rows = read_oplog(log.path)
    assert len(rows) == 100_000
    assert rows[7]["idx"] == "7" and rows[7]["op"] == "PUT" and rows[7]["file"] == "s3://b/k7"
    assert rows[7]["duration_ns"] == "5000" and rows[7]["first_byte"] == ""
    assert rows[7]["start"] == "2026-09-21T14:13:20.000000000Z"
    assert log.path.stat().st_size < 100_000 * 20


def test_a_run_logs_every_request_of_every_actor(ray_cluster, moto_url, bucket, tmp_path):
    base = tmp_path / "oplog" / "quick.tsv.zst"
    settings = settings_for(bucket, objects=24, object_size="16KiB", op_log=str(base))
    result = asyncio.run(execute(plan_run(settings, (moto_url,), TEST_CREDENTIALS)))
    assert result.ok, result.error
    files = sorted(base.parent.glob("quick-*.tsv.zst"))
    assert len(files) == result.cluster.actors == 3
    rows = [row for path in files for row in read_oplog(path)]
    by_op = {op: [r for r in rows if r["op"] == op] for op in ("PUT", "GET")}
    assert len(by_op["PUT"]) == len(by_op["GET"]) == 24
    assert sum(int(r["bytes"]) for r in by_op["GET"]) == 24 * 16384
    assert {r["file"] for r in by_op["PUT"]} == {r["file"] for r in by_op["GET"]}
    assert all(r["endpoint"] == moto_url and r["error"] == "" for r in rows)
    assert len({r["client_id"] for r in rows}) == 3
    for row in by_op["GET"]:
        start, first, end = when(row["start"]), when(row["first_byte"]), when(row["end"])
        assert start <= first <= end
        assert abs((end - start).total_seconds() * 1e9 - int(row["duration_ns"])) < 2000
    text = "".join(str(r) for r in rows)
    assert TEST_CREDENTIALS.secret_access_key not in text
    assert TEST_CREDENTIALS.access_key_id not in text

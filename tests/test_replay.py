"""Replays on real stores: a log this tool recorded, replayed through three Ray nodes with each
key's order and the log's per-second rate kept; warp's and s3dlio's logs; open loop against a
slow store beside the closed loop; schedule accuracy against the null endpoint; an offered load
for a synthetic phase."""

from __future__ import annotations

import asyncio
import collections
import csv
import itertools
import json
import random
import socket
import time
from pathlib import Path

import pytest
import zstandard
from conftest import (
    TEST_CREDENTIALS,
    cli_env,
    drawn,
    headless,
    run_cli,
    settings_for,
    stored_objects,
    valid_result,
)
from proxy import TcpProxy
from test_charts import layout_faults, screenshot

from s3dlio_ray._internal.lab import null_endpoint
from s3dlio_ray._internal.model.exit_codes import ExitCode
from s3dlio_ray._internal.model.keys import run_prefix
from s3dlio_ray._internal.model.open_loop import rate_errors
from s3dlio_ray._internal.replay.formats import rfc3339_ns
from s3dlio_ray._internal.reports.html import figures, render_html
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.storage.oplog import COLUMNS, OpLog
from s3dlio_ray._internal.storage.s3.client import RequestRecord

pytestmark = pytest.mark.integration

LATENESS_P99_BOUND_S = 0.050
"""The README's bound: lateness p99 at up to 300 scheduled requests a second here."""


def rows_of(paths) -> list[dict[str, str]]:
    """Every request of op-log files, read with the csv module (not the replay's reader)."""
    rows = []
    for path in paths:
        with Path(path).open("rb") as raw:
            text = zstandard.ZstdDecompressor().stream_reader(raw).read().decode()
        lines = [line for line in text.splitlines() if not line.startswith("# ")]
        rows += list(csv.DictReader(lines, delimiter="\t"))
    return sorted(rows, key=lambda r: rfc3339_ns(r["start"]))


def per_second(rows) -> list[int]:
    first = rfc3339_ns(rows[0]["start"])
    counts: list[int] = []
    for row in rows:
        second = (rfc3339_ns(row["start"]) - first) // 1_000_000_000
        counts.extend([0] * (second + 1 - len(counts)))
        counts[second] += 1
    return counts


def run(settings, endpoint: str):
    result = asyncio.run(execute(plan_run(settings, (endpoint,), TEST_CREDENTIALS)))
    return result


START_NS = 1_790_000_000_000_000_000


def own_log(path: Path, requests) -> Path:
    """This tool's op-log, in its own writer, of (operation, resource, start ns, bytes)."""
    log = OpLog(path)
    for operation, resource, at, nbytes in requests:
        log.record(
            RequestRecord(operation, resource, "http://h:1", at, None, at + 1, nbytes, 1, "")
        )
    log.close()
    return log.path


def synthetic_log(path: Path, per_s: float, seconds: float, size: int, seed: int = 1) -> Path:
    """This tool's op-log of requests at `per_s` a second: a PUT of each key before anything
    else touches it, then GET, HEAD and DELETE of keys alive."""
    rng = random.Random(seed)
    alive, made, requests = [], 0, []
    for i in range(int(per_s * seconds)):
        at = START_NS + int(i / per_s * 1e9)
        op = rng.choice(["PutObject", "GetObject", "HeadObject", "DeleteObjects"]) if alive else ""
        if not op or op == "PutObject":
            key, op, nbytes = f"data/k{made:05d}", "PutObject", size
            alive.append(key)
            made += 1
        elif op == "DeleteObjects":
            key, nbytes = alive.pop(rng.randrange(len(alive))), 0
        else:
            key, nbytes = rng.choice(alive), size if op == "GetObject" else 0
        requests.append((op, f"s3://src/{key}", at, nbytes))
    return own_log(path, requests)


def gets_log(path: Path, per_s: float, seconds: float, keys: int, size: int) -> Path:
    """This tool's op-log of GETs at `per_s` a second, over `keys` objects in turn (none read
    again within seconds: no request waits for an earlier one on its key)."""
    requests = [
        ("GetObject", f"s3://src/data/k{i % keys:05d}", START_NS + int(i / per_s * 1e9), size)
        for i in range(int(per_s * seconds))
    ]
    return own_log(path, requests)


def test_a_recorded_mixed_log_replays_through_three_nodes_at_its_pace_in_every_keys_order(
    ray_cluster, moto_url, boto3_s3, bucket, tmp_path, chromium
):
    phases = ["put", {"mixed": {"duration_s": 30, "rate_limit": "64 ops/s"}}, "cleanup"]
    recording = settings_for(
        bucket, phases=phases, objects=80, object_size="16KiB", op_log=str(tmp_path / "rec.tsv.zst")
    )
    recorded = run(recording, moto_url)
    assert recorded.ok, recorded.error
    logged = rows_of(tmp_path.glob("rec-*.tsv.zst"))
    assert 1800 <= len(logged) <= 2200
    assert {row["op"] for row in logged} == {"PUT", "GET", "HEAD", "DELETE"}

    replaying = settings_for(
        bucket,
        phases="replay,cleanup",
        replay_logs=[str(p) for p in tmp_path.glob("rec-*.tsv.zst")],
        op_log=str(tmp_path / "replayed.tsv.zst"),
    )
    result = run(replaying, moto_url)
    assert result.ok, result.error
    assert len(result.cluster.nodes) == 3
    (replay,) = [p for p in result.phases if p.phase == "replay"]
    valid_result(json.loads(json.dumps(result.to_dict())))
    # Same counts per operation and the same bytes.
    counts = collections.Counter(row["op"] for row in logged)
    sizes = collections.Counter()
    for row in logged:
        sizes[row["op"]] += int(row["bytes"])
    assert {op: s.objects for op, s in replay.by_op.items()} == dict(counts)
    assert {op: replay.by_op[op].bytes for op in ("PUT", "GET")} == {
        op: sizes[op] for op in ("PUT", "GET")
    }
    assert replay.errors == 0 and replay.verify_failures == 0
    assert replay.verified == counts["GET"]
    assert set(replay.nodes) == set(result.cluster.nodes)
    assert replay.replay is not None and set(replay.replay.clock_offsets) == set(
        result.cluster.nodes
    )
    # Each second of the log sent within 5 % of the log's count in that second.
    loop = replay.open_loop
    assert loop is not None and loop.sent == len(logged)
    errors = rate_errors(per_second(logged), loop.sent_per_s)
    assert len(errors) >= 25 and max(map(abs, errors)) <= 0.05, errors
    # Every key's operations in the log's order, each started after the one before it ended.
    replayed = [row for row in rows_of(tmp_path.glob("replayed-*.tsv.zst")) if row["op"] in counts]
    by_key = collections.defaultdict(list)
    for row in replayed:
        by_key[row["file"]].append(row)
    for rows in by_key.values():
        for before, after in itertools.pairwise(rows):
            assert rfc3339_ns(before["end"]) <= rfc3339_ns(after["start"]), (before, after)
    logged_orders = collections.defaultdict(list)
    for row in logged:
        logged_orders[row["file"]].append(row["op"])
    assert sorted(tuple(r["op"] for r in rows) for rows in by_key.values()) == sorted(
        tuple(ops) for ops in logged_orders.values()
    )
    # The report shows the log's schedule and what was sent, second by second.
    figure = figures(result)["schedule"]
    assert layout_faults(figure) == []
    page = tmp_path / "replay.html"
    page.write_text(render_html(result))
    dom = headless(chromium, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    assert "Open loop: schedule, lateness, service and response" in dom
    assert drawn(dom, "schedule-scheduled-0") >= 2 * len(per_second(logged))
    assert drawn(dom, "schedule-sent-0") >= 2 * len(per_second(logged))
    screenshot(chromium, page, "report-replay", tmp_path / "profile")
    # Nothing left: the replay's objects removed with the run's cleanup.
    assert stored_objects(boto3_s3, bucket, run_prefix(replaying.prefix, replaying.run_id)) == {}
    assert result.cleanup is not None and result.cleanup.deleted > 0


def warp_log(path: Path, requests: int, seconds: float) -> Path:
    """A warp benchmark's `.csv.zst`, as warp documents it: its 14 columns (with `cat`), Go's
    RFC3339Nano times, the key alone in `file`, comment lines at the end."""
    rng = random.Random(3)
    lines = ["\t".join((*COLUMNS, "cat"))]
    for i in range(requests):
        at = START_NS + int(i * seconds / requests * 1e9)
        op = rng.choice(["GET", "GET", "STAT", "PUT"])
        key = f"Xy7/{rng.randrange(20)}.rnd"
        size = 8192 if op in ("GET", "PUT") else 0
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(at // 10**9))
        when = f"{stamp}.{at % 10**9:09d}".rstrip("0").rstrip(".") + "Z"
        fields = (i, i % 4, op, "c1", 1, size, "127.0.0.1:9000", key, "", when, "", when, 1000, 0)
        lines.append("\t".join(map(str, fields)))
    lines += ["# warp mixed --duration 3s", "# commandline: warp mixed"]
    path.write_bytes(zstandard.ZstdCompressor().compress(("\n".join(lines) + "\n").encode()))
    return path


def s3dlio_log(path: Path, moto_url: str, boto3_s3, bucket: str, monkeypatch) -> Path:
    """An op-log the s3dlio wheel writes itself, against the session's moto server."""
    import s3dlio

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", TEST_CREDENTIALS.access_key_id)
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", TEST_CREDENTIALS.secret_access_key)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_url)
    monkeypatch.setenv("AWS_REGION", "us-east-1")
    s3dlio.init_op_log(str(path))
    for i in range(12):
        s3dlio.put_bytes(f"s3://{bucket}/s3dlio/{i}.bin", bytes(4096 + i))
        time.sleep(0.05)
        s3dlio.get(f"s3://{bucket}/s3dlio/{i}.bin")
        s3dlio.stat(f"s3://{bucket}/s3dlio/{i}.bin")
    s3dlio.list(f"s3://{bucket}/s3dlio/")
    for i in range(6):
        s3dlio.delete(f"s3://{bucket}/s3dlio/{i}.bin")
    s3dlio.finalize_op_log()
    for key in stored_objects(boto3_s3, bucket, "s3dlio/"):
        boto3_s3.delete_object(Bucket=bucket, Key=key)
    monkeypatch.undo()
    return path


def read_before_written(rows) -> set[str]:
    """Keys the log reads before it writes them: what a replay creates first."""
    written, needed = set(), set()
    for row in rows:
        if row["op"] == "PUT":
            written.add(row["file"])
        elif row["file"] not in written and row["op"] in ("GET", "STAT", "HEAD"):
            needed.add(row["file"])
    return needed


def test_warps_and_s3dlios_logs_each_replay_and_leave_nothing(
    moto_url, boto3_s3, bucket, tmp_path, monkeypatch
):
    warp = warp_log(tmp_path / "warp-mixed-2026-12-02[230308]-Ab.csv.zst", 240, 3.0)
    s3dlio = s3dlio_log(tmp_path / "s3dlio.tsv.zst", moto_url, boto3_s3, bucket, monkeypatch)
    for path, fmt in ((warp, "warp"), (s3dlio, "s3dlio")):
        logged = rows_of([path])
        settings = settings_for(
            bucket, phases="replay,cleanup", replay_logs=[str(path)], executor="local"
        )
        result = run(settings, moto_url)
        assert result.ok, result.error
        (replay,) = [p for p in result.phases if p.phase == "replay"]
        assert replay.replay is not None and replay.replay.sources == (
            (str(path), fmt, len(logged)),
        )
        named = {"STAT": "HEAD"}
        wanted = collections.Counter(named.get(row["op"], row["op"]) for row in logged)
        assert {op: s.objects for op, s in replay.by_op.items()} == dict(wanted)
        assert replay.errors == 0 and replay.verify_failures == 0
        # What the log reads before writing it was created first.
        assert replay.replay.created == len(read_before_written(logged))
        assert stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id)) == {}


def test_open_loop_keeps_the_schedule_and_its_response_times_show_queueing_closed_loop_hides(
    moto_url, boto3_s3, bucket, tmp_path
):
    host, port = moto_url.removeprefix("http://").split(":")
    log = gets_log(tmp_path / "gets.tsv.zst", 30, 4.0, 200, 4096)

    async def main():
        proxy = await TcpProxy(host, int(port), response_delay_s=0.1).start()
        try:
            results = []
            for concurrency in (64, 2):
                settings = settings_for(
                    bucket,
                    phases="replay,cleanup",
                    replay_logs=[str(log)],
                    executor="local",
                    concurrency=concurrency,
                )
                results.append(await execute(plan_run(settings, (proxy.url,), TEST_CREDENTIALS)))
            closed = settings_for(
                bucket,
                phases="put,get",
                objects=20,
                object_size="4KiB",
                executor="local",
                concurrency=2,
            )
            results.append(await execute(plan_run(closed, (proxy.url,), TEST_CREDENTIALS)))
            return results
        finally:
            await proxy.close()

    roomy, tight, closed = asyncio.run(main())
    for result in (roomy, tight, closed):
        assert result.ok, result.error
    kept = next(p for p in roomy.phases if p.phase == "replay").open_loop
    queued = next(p for p in tight.phases if p.phase == "replay").open_loop
    get = next(p for p in closed.phases if p.phase == "get")
    assert kept is not None and queued is not None
    # Room to keep the schedule: sent on time, the response is the service time (0.1 s added).
    assert kept.lateness.percentile(0.99) < 0.05 and kept.capped == 0
    assert 0.1 <= kept.response["GET"].percentile(0.5) < 0.1 + 0.1
    # Two in flight against 30 a second of 0.1 s each: the queue grows, and response times hold
    # it, while the service time and the closed loop's latency (two in flight, one after the
    # other) say 0.1 s.
    assert queued.capped > 0 and queued.behind_share > 0.5
    closed_p50 = get.latency.p50_s
    assert 0.1 <= closed_p50 < 0.2
    assert queued.service["GET"].percentile(0.5) < 0.2
    assert queued.response["GET"].percentile(0.5) > 3 * closed_p50
    assert queued.response["GET"].percentile(0.99) > 5 * get.latency.p99_s


def wait_listening(port: int, server) -> None:
    deadline = time.monotonic() + 30
    while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
        assert server.poll() is None and time.monotonic() < deadline
        time.sleep(0.1)


def test_against_the_null_endpoint_the_schedule_is_kept_within_the_readmes_bound(tmp_path):
    log = synthetic_log(tmp_path / "fast.tsv.zst", 300, 5.0, 4096, seed=9)
    logged = rows_of([log])
    port, server = null_endpoint.launch("4KiB")
    try:
        wait_listening(port, server)
        settings = settings_for(
            None,
            phases="replay,cleanup",
            replay_logs=[str(log)],
            executor="local",
            verify=False,
        )
        result = run(settings, f"http://127.0.0.1:{port}")
    finally:
        server.terminate()
        server.wait()
    assert result.ok, result.error
    valid_result(json.loads(json.dumps(result.to_dict())))
    (replay,) = [p for p in result.phases if p.phase == "replay"]
    assert {op: s.objects for op, s in replay.by_op.items()} == dict(
        collections.Counter(row["op"] for row in logged)
    )
    loop = replay.open_loop
    assert loop is not None and loop.sent == len(logged) == 1500
    assert loop.lateness.percentile(0.99) < LATENESS_P99_BOUND_S, loop.lateness.summary()


def test_an_offered_load_issues_a_synthetic_phase_open_loop(moto_url, bucket):
    phases = ["put", {"get": {"duration_s": 3, "arrival": {"constant": 40}}}, "cleanup"]
    settings = settings_for(bucket, phases=phases, objects=10, object_size="4KiB", executor="local")
    result = run(settings, moto_url)
    assert result.ok, result.error
    valid_result(json.loads(json.dumps(result.to_dict())))
    put, get = result.phases[0], result.phases[1]
    assert put.open_loop is None
    loop = get.open_loop
    assert loop is not None and 110 <= loop.sent <= 125 and get.objects == loop.sent
    assert loop.lateness.percentile(0.5) < 0.05
    assert all(30 <= n <= 50 for n in loop.sent_per_s[:2]), loop.sent_per_s


def test_the_command_names_what_it_read_and_refuses_what_it_cannot_read(moto_url, tmp_path):
    warp = warp_log(tmp_path / "warp.csv.zst", 120, 2.0)
    env = cli_env(AWS_ENDPOINT_URL=moto_url)
    proc = run_cli(
        "replay",
        str(warp),
        "--executor",
        "local",
        "--quiet",
        "--speed",
        "2",
        "--output",
        str(tmp_path / "out.json"),
        env=env,
    )
    assert proc.returncode == 0, proc.stderr
    assert f"replay: read {warp}: warp op-log, 120 requests" in proc.stderr
    assert "REPLAY open loop: 120 sent on schedule" in proc.stdout
    assert "at 2x the log's pace" in proc.stdout
    saved = json.loads((tmp_path / "out.json").read_text())
    assert saved["phases"][-1]["replay"]["speed"] == 2.0
    for args, said in (
        ([str(tmp_path / "none.tsv.zst")], "no such op-log file"),
        ([str(tmp_path / "out.json")], "not an op-log"),
        ([str(warp), "--speed", "0"], "speed"),
        ([str(warp), "--rewrite", "a=b"], "rewrite: maps the log's objects onto existing data"),
    ):
        proc = run_cli("replay", *args, "--executor", "local", env=env)
        assert proc.returncode == ExitCode.BAD_INPUT, proc.stderr
        lines = proc.stderr.strip().splitlines()
        assert said in lines[-1] and "Traceback" not in proc.stderr, proc.stderr


def test_existing_data_is_read_where_the_log_points_and_missing_keys_are_listed(
    moto_url, boto3_s3, bucket, tmp_path
):
    for i in range(4):
        boto3_s3.put_object(Bucket=bucket, Key=f"train/x{i}.bin", Body=bytes(1000 + i))
    requests = []
    for i in range(6):
        at, resource = START_NS + i * 50_000_000, f"s3://prod/data/x{i}.bin"
        requests += [("GetObject", resource, at, 1000), ("HeadObject", resource, at + 1, 0)]
    log = own_log(tmp_path / "reads.tsv.zst", requests)
    settings = settings_for(
        bucket,
        phases="replay,cleanup",
        replay_logs=[str(log)],
        existing=True,
        rewrite=["prod/data/=train/"],
        executor="local",
    )
    result = run(settings, moto_url)
    assert result.ok, result.error
    (replay,) = [p for p in result.phases if p.phase == "replay"]
    assert replay.missing == ("train/x4.bin", "train/x5.bin")
    assert replay.by_op["GET"].objects == 6 and replay.by_op["GET"].bytes == sum(
        1000 + i for i in range(4)
    )
    assert replay.errors == 0 and replay.replay is not None and replay.replay.created == 0
    assert sorted(stored_objects(boto3_s3, bucket, "train/")) == [
        f"train/x{i}.bin" for i in range(4)
    ]

"""`s3dlio-ray cp`: files to an S3 prefix and back through three simulated Ray nodes on moto,
every file compared byte for byte; per-node copies, sync, no-clobber, and bad input (a missing
source, a file where a folder should be, a full disk, a corrupted object)."""

from __future__ import annotations

import asyncio
import json
import os
import pickle
import random
import resource
import subprocess
import zlib
from pathlib import Path

from conftest import CLI, ROOT, TEST_CREDENTIALS, cli_env, run_cli

from s3dlio_ray._internal.model import crc
from s3dlio_ray._internal.model.copy_plan import (
    MANIFEST,
    CopyItems,
    CopySpec,
    S3Location,
    copy_workload,
    selected,
)
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings

MIB = 1024 * 1024


def test_crc_of_parts_is_the_crc_of_the_whole():
    rng = random.Random(7)
    data = rng.randbytes(3 * MIB + 123)
    for _ in range(40):
        cuts = sorted(rng.sample(range(len(data)), rng.randint(0, 6)))
        ranges = [(a, b - a) for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]
        crcs = [zlib.crc32(data[a : a + n]) for a, n in ranges]
        assert crc.of(crcs, ranges) == zlib.crc32(data)
    assert crc.combine(zlib.crc32(b"abc"), zlib.crc32(b""), 0) == zlib.crc32(b"abc")
    assert crc.from_header(crc.header(0xDEADBEEF)) == 0xDEADBEEF
    assert crc.from_header("AAAAAA==-3") is None


def test_include_wins_over_exclude_and_names_map_both_ways():
    assert selected("a/b.jpg", (), ())
    assert not selected("a/b.tmp", (), ("*.tmp",))
    assert selected("a/b.jpg", ("*.jpg",), ("*",)) and not selected("a/b.txt", ("*.jpg",), ("*",))
    folder = CopySpec("/data", S3Location.parse("s3://b/set"))
    assert (folder.key_for("x/y.bin"), folder.path_for("x/y.bin")) == (
        "set/x/y.bin",
        "/data/x/y.bin",
    )
    assert folder.manifest_key == f"set/{MANIFEST}"
    one = CopySpec("/data/f.bin", S3Location.parse("s3://b/k/g.bin"), single=True)
    assert (one.key_for("f.bin"), one.manifest_key) == ("k/g.bin", f"k/{MANIFEST}")
    into = CopySpec("/d/{node}/", S3Location.parse("s3://b/k/g"), single=True)
    assert into.for_node("n1").path_for("g") == "/d/n1/g"
    items = CopyItems(["a", "b", "c"], [1, 2, 3], [-1, 5, -1])
    share = pickle.loads(pickle.dumps(items[1:]))
    assert list(share.items()) == [("b", 2, 5), ("c", 3, None)]


def make_tree(root: Path) -> dict[str, bytes]:
    """Files of mixed sizes: empty, tiny, below and above the 5 MiB part size, nested."""
    rng = random.Random(11)
    sizes = {
        "empty": 0,
        "tiny.txt": 7,
        "a/small.bin": 100_000,
        "a/b/mid.bin": 3 * MIB + 17,
        "a/b/large.bin": 12 * MIB + 5,
        "c/leave.tmp": 10,
    }
    for index in range(12):
        sizes[f"many/{index:03d}.jpg"] = rng.randint(1, 200_000)
    tree = {}
    for name, size in sizes.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        tree[name] = rng.randbytes(size)
        path.write_bytes(tree[name])
    return tree


def tree_of(root: Path) -> dict[str, bytes]:
    return {
        p.relative_to(root).as_posix(): p.read_bytes()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def copy(source, destination, endpoint, **overrides):
    settings = load_settings(
        copy_workload(str(source), str(destination)),
        {"endpoint": endpoint, "metrics_port": "off", "part_size_mb": 5, **overrides},
        environ={},
    )
    return asyncio.run(execute(plan_run(settings, (endpoint,), TEST_CREDENTIALS)))


def test_a_folder_round_trips_byte_exact_through_three_nodes(
    ray_cluster, moto_url, bucket, boto3_s3, tmp_path
):
    tree = make_tree(tmp_path / "src")
    up = copy(tmp_path / "src", f"s3://{bucket}/set", moto_url, recursive=True, exclude="*.tmp")
    assert up.ok, up.error
    assert up.cluster.actors == 3 and len(up.cluster.nodes) == 3
    (phase,) = up.phases
    wanted = {name: data for name, data in tree.items() if not name.endswith(".tmp")}
    assert phase.objects == len(wanted) and phase.stats.bytes == sum(map(len, wanted.values()))
    assert phase.checks == {"crc32 sent, kept by the store": len(wanted)}
    assert len({a.node for a in phase.actors}) == 3
    stored = {o["Key"]: o["Size"] for o in boto3_s3.list_objects_v2(Bucket=bucket)["Contents"]}
    assert stored == {f"set/{n}": len(d) for n, d in wanted.items()} | {
        f"set/{MANIFEST}": stored[f"set/{MANIFEST}"]
    }
    manifest = json.loads(boto3_s3.get_object(Bucket=bucket, Key=f"set/{MANIFEST}")["Body"].read())
    assert manifest["objects"] == {
        n: {"size": len(d), "crc32": zlib.crc32(d)} for n, d in wanted.items()
    }
    # The store keeps what the upload sent: a small object's CRC32, a large one's composite
    # (the CRC32 of its three 5 MiB parts' CRC32s).
    small = boto3_s3.head_object(Bucket=bucket, Key="set/a/small.bin", ChecksumMode="ENABLED")
    assert small["ChecksumCRC32"] == crc.header(zlib.crc32(tree["a/small.bin"]))
    large = boto3_s3.head_object(Bucket=bucket, Key="set/a/b/large.bin", ChecksumMode="ENABLED")
    data = tree["a/b/large.bin"]
    parts = [data[i : i + 5 * MIB] for i in range(0, len(data), 5 * MIB)]
    composite = zlib.crc32(b"".join(zlib.crc32(p).to_bytes(4, "big") for p in parts))
    assert len(parts) == 3 and large["ChecksumCRC32"].split("-")[0] == crc.header(composite)

    down = copy(f"s3://{bucket}/set", tmp_path / "dst", moto_url, recursive=True)
    assert down.ok, down.error
    assert down.phases[0].checks == {"crc32 against the manifest": len(wanted)}
    assert tree_of(tmp_path / "dst") == wanted

    def sync():
        return copy(
            tmp_path / "src",
            f"s3://{bucket}/set",
            moto_url,
            recursive=True,
            exclude="*.tmp",
            sync=True,
        )

    again = sync()
    assert again.ok and again.phases[0].checks == {"skipped: same size and crc32": len(wanted)}
    assert again.phases[0].stats.bytes == 0
    (tmp_path / "src" / "tiny.txt").write_bytes(b"changed")
    once = sync()
    assert once.ok and once.phases[0].stats.bytes == len(b"changed")
    assert once.phases[0].checks == {
        "crc32 sent, kept by the store": 1,
        "skipped: same size and crc32": len(wanted) - 1,
    }


def test_a_per_node_download_gives_every_node_the_whole_set(
    ray_cluster, moto_url, bucket, tmp_path
):
    tree = make_tree(tmp_path / "src")
    assert copy(tmp_path / "src", f"s3://{bucket}/set", moto_url, recursive=True).ok
    result = copy(
        f"s3://{bucket}/set",
        f"{tmp_path}/cache/{{node}}/set",
        moto_url,
        recursive=True,
        per_node=True,
        include="many/*",
        exclude="*",
    )
    assert result.ok, result.error
    copies = sorted((tmp_path / "cache").iterdir())
    assert [p.name for p in copies] == sorted(result.cluster.nodes)
    many = {name: data for name, data in tree.items() if name.startswith("many/")}
    for node in copies:
        assert tree_of(node / "set") == many
    assert result.phases[0].objects == 3 * len(many)


def test_no_clobber_keeps_what_is_there_and_sync_fetches_only_what_differs(
    moto_url, bucket, tmp_path
):
    tree = make_tree(tmp_path / "src")
    assert copy(
        tmp_path / "src", f"s3://{bucket}/set", moto_url, recursive=True, executor="local"
    ).ok
    dst = tmp_path / "dst"
    (dst / "a").mkdir(parents=True)
    (dst / "a" / "small.bin").write_bytes(b"mine")
    kept = copy(
        f"s3://{bucket}/set", dst, moto_url, recursive=True, clobber=False, executor="local"
    )
    assert kept.ok and (dst / "a" / "small.bin").read_bytes() == b"mine"
    assert kept.phases[0].checks["skipped: already there"] == 1
    synced = copy(f"s3://{bucket}/set", dst, moto_url, recursive=True, sync=True, executor="local")
    assert synced.ok and tree_of(dst) == tree
    assert synced.phases[0].checks == {
        "crc32 against the manifest": 1,
        "skipped: same size and crc32": len(tree) - 1,
    }


def leftovers(root: Path) -> list[Path]:
    return [p for p in root.rglob("*") if ".s3dlio-ray-" in p.name]


def cp_cli(source, destination, endpoint: str, output: Path) -> subprocess.CompletedProcess:
    """`s3dlio-ray cp --recursive` on one local engine, its result files at `output`."""
    return run_cli(
        "cp", str(source), str(destination), "--recursive", "--endpoint", endpoint,
        "--executor", "local", "--quiet", "--output", str(output),
    )  # fmt: skip


def test_bad_input_is_one_line_and_leaves_nothing_half_written(moto_url, bucket, tmp_path):
    missing = run_cli("cp", str(tmp_path / "nope"), f"s3://{bucket}/x", "--endpoint", moto_url)
    assert missing.returncode == 2 and "no such file or folder" in missing.stderr
    assert len(missing.stderr.strip().splitlines()) == 1
    folder = run_cli("cp", str(ROOT / "configs"), f"s3://{bucket}/x", "--endpoint", moto_url)
    assert folder.returncode == 2 and "add --recursive" in folder.stderr
    no_bucket = run_cli(
        "cp", str(ROOT / "README.md"), "s3://no-such-bucket-here/x", "--endpoint", moto_url,
        "--executor", "local",
    )  # fmt: skip
    assert no_bucket.returncode == 2 and "does not exist" in no_bucket.stderr

    tree = make_tree(tmp_path / "src")
    upload = cp_cli(tmp_path / "src", f"s3://{bucket}/set", moto_url, tmp_path / "up.json")
    assert upload.returncode == 0, upload.stderr
    blocked = tmp_path / "blocked"
    blocked.mkdir()
    (blocked / "a").write_bytes(b"a file where a folder should be")
    down = cp_cli(f"s3://{bucket}/set", blocked, moto_url, tmp_path / "down.json")
    assert down.returncode == 1 and "Traceback" not in down.stderr
    assert "a file stands where a folder of its path should be" in down.stdout + down.stderr
    assert (blocked / "a").read_bytes() == b"a file where a folder should be"
    assert not leftovers(blocked)
    assert (blocked / "tiny.txt").read_bytes() == tree["tiny.txt"]


def small_files_only() -> None:
    resource.setrlimit(resource.RLIMIT_FSIZE, (4 * MIB, 4 * MIB))


def test_a_full_disk_stops_the_copy_in_one_line_and_keeps_no_partial_file(
    moto_url, bucket, tmp_path
):
    make_tree(tmp_path / "src")
    assert copy(
        tmp_path / "src", f"s3://{bucket}/set", moto_url, recursive=True, executor="local"
    ).ok
    dst = tmp_path / "dst"
    full = subprocess.run(
        [
            *CLI,
            "cp",
            f"s3://{bucket}/set/a/b/large.bin",
            str(dst / "large.bin"),
            "--endpoint",
            moto_url,
            "--executor",
            "local",
            "--quiet",
            "--output",
            str(tmp_path / "full.json"),
        ],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=120,
        preexec_fn=small_files_only,
    )
    assert full.returncode == 1, full.stderr
    assert "large.bin: cannot write it: File too large" in full.stderr
    assert len(full.stderr.strip().splitlines()) == 1 and "Traceback" not in full.stderr
    assert not (dst / "large.bin").exists() and not leftovers(dst)


def test_an_object_that_does_not_match_its_manifest_is_not_kept(
    moto_url, bucket, boto3_s3, tmp_path
):
    tree = make_tree(tmp_path / "src")
    assert copy(
        tmp_path / "src", f"s3://{bucket}/set", moto_url, recursive=True, executor="local"
    ).ok
    boto3_s3.put_object(Bucket=bucket, Key="set/a/small.bin", Body=b"x" * 100_000)
    dst = tmp_path / "dst"
    result = copy(f"s3://{bucket}/set", dst, moto_url, recursive=True, executor="local")
    assert not result.ok
    (failure,) = result.phases[0].failed.items()
    assert failure[0] == str(dst / "a" / "small.bin")
    assert "CRC32" in failure[1] and "the manifest" in failure[1]
    assert not (dst / "a" / "small.bin").exists() and not leftovers(dst)
    assert (dst / "tiny.txt").read_bytes() == tree["tiny.txt"]
    assert os.listdir(dst / "a") == ["b"]

"""From logged HTTP requests to the operations a replay issues, when, and on which target key.

A log records requests, not objects: a multipart upload's rows (CreateMultipartUpload, its
UploadParts, CompleteMultipartUpload) become one PUT of the summed size at the upload's start, a
DELETE of k objects one delete of the k keys it named (a prefix names those the log holds under
it, first written first). Failed requests are not replayed, and are counted. Operations are
grouped by key into lanes, so that sharding lanes over actors keeps each key's operations in one
actor, in order; a delete of keys in several lanes has a part in each, which an actor sends as
one request.
"""

from __future__ import annotations

import zlib
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import NamedTuple, Protocol

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.open_loop import tally
from s3dlio_ray._internal.replay.formats import Logged

REPLAYED = ("GET", "PUT", "HEAD", "DELETE", "LIST")


class ReplayOp(NamedTuple):
    """One operation of a replay: when (seconds from its start, speed applied), what, the
    target key (a LIST's prefix), the size written or read (-1: not known), and the request of
    the log it replays (a delete's parts in several lanes share it)."""

    at_s: float
    op: str
    key: str
    size: int
    row: int


Lane = tuple[ReplayOp, ...]


class Target(Protocol):
    """Where a logged object is replayed."""

    def key(self, bucket: str, key: str) -> str: ...

    def prefix(self, bucket: str, prefix: str) -> str: ...


class OwnNames:
    """The run's own naming under its prefix: `replay-N`, numbered as the log first names each
    object, so cleanup removes them as it removes a run's other keys."""

    def __init__(self, run_prefix: str) -> None:
        self._prefix = run_prefix
        self._names: dict[tuple[str, str], str] = {}

    def key(self, bucket: str, key: str) -> str:
        name = self._names.get((bucket, key))
        if name is None:
            name = self._names[(bucket, key)] = f"{self._prefix}replay-{len(self._names):08d}"
        return name

    def prefix(self, bucket: str, prefix: str) -> str:
        return f"{self._prefix}replay-"


@dataclass(frozen=True)
class Rewrite:
    """`OLD=NEW`: a logged `BUCKET/KEY` path that starts with OLD is read at NEW + the rest
    (the target bucket's key)."""

    old: str
    new: str

    @classmethod
    def parse(cls, text: str) -> Rewrite:
        old, sep, new = text.partition("=")
        if not sep:
            raise ConfigError(f"replay map {text!r}: expected OLD=NEW (a BUCKET/KEY prefix each)")
        return cls(old, new)


class Mapped:
    """The logged objects where they are (`--existing`): `BUCKET/KEY` rewritten by the first
    rule whose prefix it has; with none, the key as logged."""

    def __init__(self, rules: Sequence[Rewrite]) -> None:
        self._rules = rules

    def key(self, bucket: str, key: str) -> str:
        path = f"{bucket}/{key}" if bucket else key
        for rule in self._rules:
            if path.startswith(rule.old):
                return rule.new + path[len(rule.old) :]
        return key

    def prefix(self, bucket: str, prefix: str) -> str:
        return self.key(bucket, prefix)


@dataclass
class ReplayPlan:
    """What a replay issues: its lanes (shard them contiguously: every key in one share),
    requests and bytes per operation, the objects it reads before the log writes them (to be
    there first: their sizes), what it leaves out and why, and its schedule per second."""

    lanes: list[Lane]
    planned: dict[str, int]
    planned_bytes: dict[str, int]
    needed: dict[str, int]
    skipped: dict[str, int]
    per_second: list[int]
    span_s: float
    speed: float
    objects: int = 0
    """Distinct target keys the replay touches."""
    splits: int = 0
    """Deletes of more than one key (sent as one request per actor holding some of them)."""

    @property
    def operations(self) -> int:
        return sum(self.planned.values())


class _Planner:
    def __init__(self, target: Target, speed: float, existing: bool) -> None:
        self.target, self.speed, self.existing = target, speed, existing
        self.ops: list[ReplayOp] = []
        self.skipped: Counter[str] = Counter()
        self.needed: dict[str, int] = {}
        self.sizes: dict[str, int] = {}
        """Each target object's size as the replay knows it (written, or needed)."""
        self.live: dict[tuple[str, str], None] = {}
        self.uploads: dict[tuple[str, str], list[int]] = {}
        self.first_ns: int | None = None
        self.splits = 0
        self.written: set[str] = set()

    def at(self, start_ns: int) -> float:
        if self.first_ns is None:
            self.first_ns = start_ns
        return (start_ns - self.first_ns) / 1e9 / self.speed

    def add(self, start_ns: int, op: str, key: str, size: int) -> None:
        self.ops.append(ReplayOp(self.at(start_ns), op, key, size, len(self.ops)))

    def read(self, row: Logged) -> None:
        where = (row.bucket, row.key)
        key = self.target.key(*where)
        if where not in self.live and key not in self.written:
            self.live[where] = None
            self.needed[key] = max(self.needed.get(key, 0), row.nbytes)
            self.sizes[key] = self.needed[key]
        size = -1 if self.existing else self.sizes.get(key, -1)
        self.add(row.start_ns, row.op, key, size if row.op == "GET" else 0)

    def write(self, start_ns: int, bucket: str, logged_key: str, size: int) -> None:
        key = self.target.key(bucket, logged_key)
        self.live[(bucket, logged_key)] = None
        self.written.add(key)
        self.sizes[key] = size
        self.add(start_ns, "PUT", key, size)

    def delete(self, row: Logged) -> None:
        if row.key and row.n_objects <= 1:
            names = [row.key]
        else:
            names = [
                key for bucket, key in self.live if bucket == row.bucket and key.startswith(row.key)
            ][: row.n_objects]
        if not names:
            self.skipped["DELETE of objects the log never named"] += 1
            return
        at, index = self.at(row.start_ns), len(self.ops)
        for name in names:
            key = self.target.key(row.bucket, name)
            if (row.bucket, name) not in self.live and key not in self.written:
                self.needed.setdefault(key, 0)
            self.live.pop((row.bucket, name), None)
            self.ops.append(ReplayOp(at, "DELETE", key, 0, index))
        self.splits += len(names) > 1

    def multipart(self, row: Logged) -> bool:
        """Fold a multipart upload's rows; True when the row was one of them."""
        where = (row.bucket, row.key)
        if row.op == "CreateMultipartUpload":
            self.uploads[where] = [row.start_ns, 0]
        elif row.op == "PUT" and where in self.uploads:
            self.uploads[where][1] += row.nbytes
        elif row.op == "CompleteMultipartUpload" and where in self.uploads:
            start_ns, size = self.uploads.pop(where)
            self.write(start_ns, row.bucket, row.key, size)
        elif row.op == "AbortMultipartUpload":
            self.uploads.pop(where, None)
            self.skipped["aborted multipart upload"] += 1
        else:
            return False
        return True

    def take(self, row: Logged) -> None:
        if row.failed:
            self.skipped[f"failed {row.op}"] += 1
        elif self.multipart(row):
            return
        elif row.op not in REPLAYED:
            self.skipped[f"{row.op} (not replayed)"] += 1
        elif row.op == "PUT":
            self.write(row.start_ns, row.bucket, row.key, row.nbytes)
        elif row.op in ("GET", "HEAD"):
            self.read(row)
        elif row.op == "DELETE":
            self.delete(row)
        else:
            self.add(row.start_ns, "LIST", self.target.prefix(row.bucket, row.key), 0)


def _lane_of(op: ReplayOp) -> str:
    """A LIST touches no one key: each is a lane of its own."""
    return f"\0list {op.row}" if op.op == "LIST" else op.key


def plan(
    rows: Iterable[Logged], target: Target, speed: float = 1.0, existing: bool = False
) -> ReplayPlan:
    """The replay of `rows` (in start order) at `speed` on `target`; with `existing` the log
    may only read (the objects are someone else's)."""
    if speed <= 0:
        raise ConfigError(f"replay speed {speed}: expected a factor above 0 (2: twice as fast)")
    planner = _Planner(target, speed, existing)
    for row in rows:
        planner.take(row)
    if planner.uploads:
        planner.skipped["multipart upload never completed"] += len(planner.uploads)
    ops = sorted(planner.ops, key=lambda op: (op.at_s, op.row))
    if existing:
        writes = sum(op.op in ("PUT", "DELETE") for op in ops)
        if writes:
            raise ConfigError(
                f"replay --existing: the log writes or deletes {writes} objects; --existing "
                "only reads data that is there (drop it to replay on objects the run creates)"
            )
    lanes: dict[str, list[ReplayOp]] = {}
    for op in ops:
        lanes.setdefault(_lane_of(op), []).append(op)
    requests = {op.row: op for op in ops}.values()
    planned: Counter[str] = Counter()
    planned_bytes: Counter[str] = Counter()
    per_second: list[int] = []
    for op in requests:
        planned[op.op] += 1
        planned_bytes[op.op] += max(op.size, 0)
        tally(per_second, int(op.at_s))
    ordered = sorted(lanes.items(), key=lambda item: zlib.crc32(item[0].encode()))
    return ReplayPlan(
        [tuple(lane) for _, lane in ordered],
        dict(planned),
        dict(planned_bytes),
        planner.needed,
        dict(planner.skipped),
        per_second,
        ops[-1].at_s if ops else 0.0,
        speed,
        objects=len({op.key for op in ops if op.op != "LIST"}),
        splits=planner.splits,
    )


def describe_skipped(skipped: Mapping[str, int]) -> str:
    return ", ".join(f"{count} {reason}" for reason, count in sorted(skipped.items()))

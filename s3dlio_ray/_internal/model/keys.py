"""Which keys a run reads and writes, by index: names computed, never held in memory.

A run's keys are `PREFIX/RUN_ID/obj-N` (N zero-padded to at least 8 digits), and a timed PUT's
later rounds `obj-N.R`. A `KeyRange` is a list of index spans of those names: a share of ten
million keys pickles in a few hundred bytes, and what a PUT stored (its share, its later rounds,
less the keys that failed) is again a KeyRange. Objects found in a bucket rather than named here
are `ListedKeys`: names and sizes as a listing or a manifest gave them.
"""

from __future__ import annotations

import bisect
import itertools
import re
import shlex
from array import array
from collections.abc import Collection, Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, overload

from s3dlio_ray._internal.model.sizes import ObjectSizes

_NAME = re.compile(r"obj-(\d{8,})(?:\.(\d+))?")
RUN_NAMES = r"obj-\d{8,}(?:\.\d+)?|mixed-\d+-\d{8,}|ckpt-\d{4,}-\d{5,}|data-\d{8,}|replay-\d{8,}"
"""The names a run gives what it writes under its prefix: objects, a timed PUT's later rounds,
a mixed phase's new keys, checkpoint shards, a training set's files."""
_RUN_NAME = re.compile(RUN_NAMES)


def run_prefix(prefix: str, run_id: str) -> str:
    """Where a run writes: under its own id, so cleanup never touches another run's keys."""
    return f"{prefix.strip('/')}/{run_id}/" if prefix.strip("/") else f"{run_id}/"


DEFAULT_PREFIX = "s3dlio-ray"


def cleanup_command(
    run_id: str,
    bucket: str,
    prefix: str = DEFAULT_PREFIX,
    endpoints: Sequence[str] = (),
    extra: Sequence[str] = (),
) -> str:
    """The command a hint prints to remove a run's objects, with every flag `cleanup` needs to
    find them (a test runs what the hints print)."""
    words = ["s3dlio-ray", "cleanup", "--run-id", run_id, "--bucket", bucket]
    if prefix != DEFAULT_PREFIX:
        words += ["--prefix", prefix]
    for endpoint in endpoints:
        words += ["--endpoint", endpoint]
    return shlex.join([*words, *extra])


_NUMBERED = re.compile(r"(obj|data|replay)-(\d{8,})(?:\.(\d+))?")
_PAIRED = re.compile(r"(mixed|ckpt)-(\d+)-(\d+)")


@dataclass(frozen=True)
class KeyBounds:
    """What a run may have written under its prefix, as its journal records it: `objects` and
    dataset `files` bound its `obj-N` and `data-N` keys (N below them); `rounds` the R of a
    timed PUT's later rounds `obj-N.R` (R at most it); `mixed` a mixed phase's `mixed-T-N`
    keys and `checkpoints` a checkpoint's `ckpt-C-S` shards (both numbers below the pair). A
    key of the run's naming past them is not the run's (someone wrote it beside the run).
    None: no bound known (a journal from before it was kept, or a phase that was still writing
    when the run was stopped)."""

    objects: int | None = None
    files: int | None = None
    rounds: int | None = None
    mixed: tuple[int, int] | None = None
    checkpoints: tuple[int, int] | None = None
    replays: int | None = None
    """A replay's `replay-N` objects (N below it)."""

    def widened(self, other: KeyBounds) -> KeyBounds:
        """Both bounds at once: the larger of each (no bound on either side: none)."""

        def wider(mine: int | None, theirs: int | None) -> int | None:
            return None if mine is None or theirs is None else max(mine, theirs)

        def wider_pair(
            mine: tuple[int, int] | None, theirs: tuple[int, int] | None
        ) -> tuple[int, int] | None:
            if mine is None or theirs is None:
                return None
            return max(mine[0], theirs[0]), max(mine[1], theirs[1])

        return KeyBounds(
            wider(self.objects, other.objects),
            wider(self.files, other.files),
            wider(self.rounds, other.rounds),
            wider_pair(self.mixed, other.mixed),
            wider_pair(self.checkpoints, other.checkpoints),
            wider(self.replays, other.replays),
        )

    def hold(self, name: str) -> bool:
        """Whether `name` (the part of a key after the run's prefix) is within the bounds."""
        match = _NUMBERED.fullmatch(name)
        if match is not None:
            bound = {"obj": self.objects, "data": self.files}.get(match.group(1), self.replays)
            round_ = int(match.group(3) or 0)
            within_rounds = self.rounds is None or round_ <= self.rounds
            return (bound is None or int(match.group(2)) < bound) and within_rounds
        paired = _PAIRED.fullmatch(name)
        if paired is not None:
            pair = self.mixed if paired.group(1) == "mixed" else self.checkpoints
            first, second = int(paired.group(2)), int(paired.group(3))
            return pair is None or (first < pair[0] and second < pair[1])
        return True


def named_by_run(prefix_of_run: str, key: str) -> bool:
    """Whether `key` is one a run under `prefix_of_run` names (its objects, a timed PUT's later
    rounds, a mixed phase's new keys)."""
    return key.startswith(prefix_of_run) and bool(_RUN_NAME.fullmatch(key, len(prefix_of_run)))


def checkpoint_shards(prefix_of_run: str, number: int, model_size: int, shards: int) -> ListedKeys:
    """Checkpoint `number` of a model of `model_size` bytes as `shards` shards, one per engine,
    sizes differing by at most one byte: `ckpt-NNNN-SSSSS` under the run's prefix."""
    size, extra = divmod(model_size, shards)
    return ListedKeys(
        [f"{prefix_of_run}ckpt-{number:04d}-{shard:05d}" for shard in range(shards)],
        [size + (1 if shard < extra else 0) for shard in range(shards)],
    )


def object_name(index: int, round_: int = 0) -> str:
    return f"obj-{index:08d}" if not round_ else f"obj-{index:08d}.{round_}"


@dataclass(frozen=True)
class Span:
    """Keys obj-start .. obj-(stop - 1), in round `round_` (0: the first write of each)."""

    start: int
    stop: int
    round_: int = 0

    def __len__(self) -> int:
        return self.stop - self.start


class KeyRange(Sequence[str]):
    """Keys under `prefix` named by index spans, in span order; slicing answers a KeyRange."""

    __slots__ = ("_ends", "prefix", "spans")

    def __init__(self, prefix: str, spans: Iterable[Span] = ()) -> None:
        self.prefix = prefix
        self.spans = tuple(_joined(s for s in spans if len(s)))
        self._ends = list(itertools.accumulate(len(s) for s in self.spans))

    @classmethod
    def of(cls, prefix: str, run_id: str, count: int) -> KeyRange:
        """A run's first `count` keys."""
        return cls(run_prefix(prefix, run_id), [Span(0, count)])

    def __reduce__(self) -> tuple[type[KeyRange], tuple[str, tuple[Span, ...]]]:
        return KeyRange, (self.prefix, self.spans)

    def __len__(self) -> int:
        return self._ends[-1] if self._ends else 0

    def __eq__(self, other: object) -> bool:
        if isinstance(other, KeyRange):
            return (self.prefix, self.spans) == (other.prefix, other.spans)
        return NotImplemented

    def __hash__(self) -> int:
        return hash((self.prefix, self.spans))

    def __repr__(self) -> str:
        return f"KeyRange({self.prefix!r}, {len(self)} keys in {len(self.spans)} spans)"

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> KeyRange: ...

    def __getitem__(self, index: int | slice) -> str | KeyRange:
        if isinstance(index, slice):
            start, stop, step = index.indices(len(self))
            if step != 1:
                raise ValueError("a KeyRange slices with step 1 only")
            return KeyRange(self.prefix, self._between(start, stop))
        if index < 0:
            index += len(self)
        if not 0 <= index < len(self):
            raise IndexError(index)
        at = bisect.bisect_right(self._ends, index)
        span = self.spans[at]
        before = self._ends[at] - len(span)
        return self.prefix + object_name(span.start + index - before, span.round_)

    def __iter__(self) -> Iterator[str]:
        prefix = self.prefix
        for span in self.spans:
            for index in range(span.start, span.stop):
                yield prefix + object_name(index, span.round_)

    def __contains__(self, key: object) -> bool:
        parsed = self._parse(key) if isinstance(key, str) else None
        if parsed is None:
            return False
        index, round_ = parsed
        return any(s.round_ == round_ and s.start <= index < s.stop for s in self.spans)

    def _between(self, start: int, stop: int) -> Iterator[Span]:
        """The spans of positions [start, stop)."""
        position = 0
        for span in self.spans:
            lo, hi = max(start - position, 0), min(stop - position, len(span))
            if lo < hi:
                yield Span(span.start + lo, span.start + hi, span.round_)
            position += len(span)

    def _parse(self, key: str) -> tuple[int, int] | None:
        if not key.startswith(self.prefix):
            return None
        match = _NAME.fullmatch(key, len(self.prefix))
        return None if match is None else (int(match[1]), int(match[2] or 0))

    def cycled(self) -> Iterator[str]:
        """A timed PUT's keys: these, then these again as new keys ("obj-N.1", "obj-N.2", ...).

        New keys, not overwrites, so a versioned bucket gains no hidden versions and every
        object written can be read back and cleaned up; derived from the share, so shares stay
        disjoint.
        """
        if not self.spans:
            return
        for round_ in itertools.count():
            yield from self.in_round(round_)

    def in_round(self, round_: int) -> KeyRange:
        return KeyRange(self.prefix, (Span(s.start, s.stop, round_) for s in self.spans))

    def written(self, dispatched: int) -> KeyRange:
        """The keys a PUT of these started when it started `dispatched` of `cycled()`."""
        if not self.spans:
            return self
        rounds, partial = divmod(dispatched, len(self))
        spans = [s for r in range(rounds) for s in self.in_round(r).spans]
        return KeyRange(self.prefix, [*spans, *self.in_round(rounds)[:partial].spans])

    def without(self, keys: Collection[str]) -> KeyRange:
        """These keys less `keys` (a PUT's failures: few, so the spans split around them)."""
        holes: dict[int, list[int]] = {}
        for key in keys:
            parsed = self._parse(key)
            if parsed is not None:
                holes.setdefault(parsed[1], []).append(parsed[0])
        if not holes:
            return self
        spans: list[Span] = []
        for span in self.spans:
            start = span.start
            inside = (h for h in holes.get(span.round_, ()) if span.start <= h < span.stop)
            for hole in sorted(inside):
                spans.append(Span(start, hole, span.round_))
                start = hole + 1
            spans.append(Span(start, span.stop, span.round_))
        return KeyRange(self.prefix, spans)

    @classmethod
    def joined(cls, prefix: str, ranges: Iterable[KeyRange]) -> KeyRange:
        """The keys of `ranges` one after the other."""
        return cls(prefix, (span for keys in ranges for span in keys.spans))


def as_key_range(keys: Sequence[str]) -> KeyRange:
    """`keys` as the KeyRange they are (this run's keys always are; a plain list is a bug)."""
    if not isinstance(keys, KeyRange):
        raise TypeError(f"this run's keys are a KeyRange, not {type(keys).__name__}")
    return keys


def _joined(spans: Iterable[Span]) -> Iterator[Span]:
    """Spans with each one that continues the one before merged into it."""
    last: Span | None = None
    for span in spans:
        if last is not None and last.round_ == span.round_ and last.stop == span.start:
            last = Span(last.start, span.stop, span.round_)
            continue
        if last is not None:
            yield last
        last = span
    if last is not None:
        yield last


@dataclass(frozen=True)
class Listing:
    """A part of a bucket's key space one LIST goes through: the keys under `prefix` after
    `start_after` and before `end_before` (None: to the end); with `delimiter`, only the objects
    directly under `prefix`, not those under a further `/`."""

    prefix: str
    start_after: str | None = None
    end_before: str | None = None
    delimiter: bool = False

    def __str__(self) -> str:
        return f"LIST {self.prefix}" + (f" after {self.start_after}" if self.start_after else "")


def listings(keys: KeyRange, size: int) -> list[Listing]:
    """A run's key space as listings of about `size` of its objects each (with a timed PUT's
    later rounds of them, which sort between: obj-N < obj-N.1 < obj-(N+1)), so the listing of
    ten million keys splits over the actors with no key in memory. Indices sort as names up to
    99,999,999 (eight digits); the settings refuse a list phase over more."""
    base = keys.prefix + "obj-"
    starts = sorted({(s.start, s.stop) for s in keys.spans if s.round_ == 0})
    last = max((stop for _, stop in starts), default=0)
    parts = []
    for start, stop in starts:
        for first in range(start, stop, size):
            end = min(first + size, stop)
            after = base if first == 0 else keys.prefix + object_name(first - 1) + "~"
            before = None if end == last else keys.prefix + object_name(end)
            parts.append(Listing(base, after, before))
    return parts


class ListedKeys(Sequence[str]):
    """Objects that exist already, as a listing or a manifest named them, with their sizes
    (held as given when already a list and an array: tens of millions of names are not copied)."""

    __slots__ = ("keys", "sizes")

    def __init__(self, keys: Sequence[str], sizes: Sequence[int]) -> None:
        if len(keys) != len(sizes):
            raise ValueError("every listed key needs its size")
        self.keys = keys if isinstance(keys, list) else list(keys)
        self.sizes = sizes if isinstance(sizes, array) else array("q", sizes)

    def __len__(self) -> int:
        return len(self.keys)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> ListedKeys: ...

    def __getitem__(self, index: int | slice) -> str | ListedKeys:
        if isinstance(index, slice):
            return ListedKeys(self.keys[index], self.sizes[index])
        return self.keys[index]

    def __reduce__(self) -> tuple[type[ListedKeys], tuple[Any, ...]]:
        return ListedKeys, (self.keys, self.sizes)

    @classmethod
    def joined(cls, parts: Iterable[tuple[Sequence[str], Sequence[int]]]) -> ListedKeys:
        """The (names, sizes) of several listings one after the other."""
        keys: list[str] = []
        sizes = array("q")
        for names, part_sizes in parts:
            keys += names
            sizes.extend(part_sizes)
        return cls(keys, sizes)


class Sized(NamedTuple):
    """One object and its size; a failure is listed under its key."""

    key: str
    size: int

    def __str__(self) -> str:
        return self.key


def with_sizes(keys: Iterable[str], sizes: ObjectSizes) -> Iterator[Sized]:
    """Each key with its size: as listed for objects that exist (or a checkpoint's shards),
    else from the distribution."""
    if isinstance(keys, ListedKeys):
        return itertools.starmap(Sized, zip(keys.keys, keys.sizes, strict=True))
    return (Sized(key, sizes.of(key)) for key in keys)


def repeated(keys: Sequence[str], sizes: ObjectSizes, times: int | None) -> Iterator[Sized]:
    """`with_sizes` `times` times over (forever when None), holding nothing per key."""
    rounds = itertools.count() if times is None else range(times)
    for _ in rounds:
        if not keys:
            return
        yield from with_sizes(keys, sizes)

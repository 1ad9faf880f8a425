"""Settings: YAML workload file, S3DLIO_* environment, command line; typed and validated.

This module is the only reader of the S3DLIO_* variables. Precedence: command line >
environment > YAML file > defaults. Every refusal is one line naming the key and what it allows.

Each setting is declared once, as a field of `Settings` with its parser, help text, group and
environment variables (`setting()`): the command line's flags, the key checks and the error
messages all come from those declarations.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields, replace
from enum import StrEnum
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import yaml

from s3dlio_ray.copy_plan import S3Location
from s3dlio_ray.dataset import sample_sizes
from s3dlio_ray.errors import ConfigError
from s3dlio_ray.results import Phase
from s3dlio_ray.sizes import DISTRIBUTIONS, ObjectSizes
from s3dlio_ray.tuning.endpoints import EndpointPolicy
from s3dlio_ray.tuning.pacing import RateLimit
from s3dlio_ray.tuning.parts import MAX_OBJECT_SIZE, MAX_PART_SIZE, MIB, MIN_PART_SIZE
from s3dlio_ray.tuning.profiles import PROFILES, is_aws_endpoint
from s3dlio_ray.units import parse_size

log = logging.getLogger(__name__)


class Client(StrEnum):
    """Who moves the bytes: this project's engine, or boto3 (the baseline)."""

    ENGINE = "engine"
    BOTO3 = "boto3"


class Executor(StrEnum):
    """Where the engines run: Ray actors on every node, or one engine in this process."""

    RAY = "ray"
    LOCAL = "local"


class Source(StrEnum):
    """What a reading phase reads: the keys this run names, or objects already in the bucket."""

    GENERATED = "generated"
    EXISTING = "existing"


class Shuffle(StrEnum):
    """DLIO's file_shuffle / sample_shuffle: keep the order, shuffle it by the run's seed (the
    same order every run with that seed), or by the run's id (a new order every run)."""

    OFF = "off"
    SEED = "seed"
    RANDOM = "random"


class BucketRemoval(StrEnum):
    CREATED = "created"
    ALWAYS = "always"
    NEVER = "never"


GROUPS = ("workload", "training", "copy", "tuning", "transport", "cluster", "metrics", "output")
MIX_OPERATIONS = ("get", "put", "stat", "delete")
PHASE_OPTIONS = (
    "duration_s",
    "verify",
    "rate_limit",
    "sleep_s",
    "autoterm",
    "autoterm_window_s",
    "autoterm_pct",
    "mix",
    "source",
    "manifest",
    "epochs",
    "allow_delete_existing",
    "page_size",
    "delete_batch",
    "model_size",
    "computation_time",
    "accelerators_per_node",
)
"""Keys a phase entry may set for itself (`- get: {duration_s: 10}`)."""

CONFIGURATION_KEYS = (
    "client",
    "concurrency",
    "target_gbps",
    "controller",
    "cluster_target_gbps",
    "min_concurrency",
    "max_concurrency",
    "http2",
    "actors_per_node",
    "part_size_mb",
    "profile",
    "accelerators_per_node",
    "memory_budget_mb",
)


@dataclass(frozen=True)
class Configuration:
    """One of the configurations a workload runs in turn: a name and the settings it changes."""

    name: str
    overrides: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class PhaseEntry:
    """One entry of `phases`: a phase and the settings it changes for itself alone."""

    phase: Phase
    options: tuple[tuple[str, Any], ...] = ()


def _parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def _parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError("expected an integer")
    return int(text)


def _parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None


def _parse_str(value: Any) -> str:
    if isinstance(value, (dict, list, bool)) or value is None:
        raise ValueError("expected a string")
    return str(value)


def _unset(value: Any) -> bool:
    """Nothing given: null, an empty string, or "none"."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def _listed(value: Any) -> list[str]:
    """The items of a list, or of one string separated by commas or spaces; blanks dropped."""
    items = value if isinstance(value, list | tuple) else re.split(r"[,\s]+", _parse_str(value))
    return [text for text in (_parse_str(item).strip() for item in items) if text]


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_optional(value: Any) -> Any:
        return None if _unset(value) else parse(value)

    return parse_optional


def _in_range(
    parse: Callable[[Any], float], lo: float, hi: float, what: str
) -> Callable[[Any], Any]:
    def parse_in_range(value: Any) -> Any:
        try:
            number = parse(value)
        except ValueError:
            number = None
        if number is None or not lo <= number <= hi:
            raise ValueError(f"expected {what} in {lo}..{hi}")
        return number

    return parse_in_range


def _int_range(lo: int, hi: int) -> Callable[[Any], int]:
    return _in_range(_parse_int, lo, hi, "an integer")


def _float_range(lo: float, hi: float) -> Callable[[Any], float]:
    return _in_range(_parse_float, lo, hi, "a number")


def _enum(kind: type[StrEnum]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        text = _parse_str(value).strip().lower()
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected one of {', '.join(kind)}") from None

    return parse


def _phase_entry(item: Any) -> PhaseEntry:
    names = ", ".join(Phase)
    if isinstance(item, dict):
        if len(item) != 1:
            raise ValueError("a phase entry is a name or one mapping of a name to its options")
        ((name, options),) = item.items()
        if not isinstance(options, dict):
            raise ValueError(f"phase {name!r}: expected a mapping of options")
    else:
        name, options = item, {}
    try:
        phase = Phase(str(name).strip().lower())
    except ValueError:
        raise ValueError(f"unknown phase {name!r}; expected phases from {names}") from None
    parsed = []
    for key, raw in options.items():
        if key not in PHASE_OPTIONS:
            raise ValueError(
                f"phase {phase}: {key!r} cannot be set per phase; "
                f"allowed: {', '.join(PHASE_OPTIONS)}"
            )
        try:
            parsed.append((key, _PARSERS[key](raw)))
        except ValueError as exc:
            raise ValueError(f"phase {phase}: {key}: {exc}") from None
    return PhaseEntry(phase, tuple(parsed))


def _phases(value: Any) -> tuple[PhaseEntry, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"expected a list of phases from {', '.join(Phase)}")
    return tuple(_phase_entry(item) for item in items)


def _concurrency(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    try:
        return _int_range(1, 4096)(value)
    except ValueError:
        raise ValueError("expected auto or an integer in 1..4096") from None


def _metrics_port(value: Any) -> int | None:
    if (isinstance(value, bool) and not value) or str(value).strip().lower() == "off":
        return None
    try:
        return _int_range(0, 65535)(value)
    except ValueError:
        raise ValueError("expected off or a port in 0..65535 (0: any free port)") from None


def _mix(value: Any) -> tuple[tuple[str, float], ...]:
    shape = f"a mapping of operation to weight, operations from {', '.join(MIX_OPERATIONS)}"
    if not isinstance(value, dict) or not value:
        raise ValueError(f"expected {shape}")
    weights = []
    for op, raw in value.items():
        if op not in MIX_OPERATIONS:
            raise ValueError(f"unknown operation {op!r}; expected {shape}")
        weight = _float_range(0, 1e9)(raw)
        weights.append((op, weight))
    if sum(w for _, w in weights) <= 0:
        raise ValueError("the weights must not all be zero")
    return tuple(weights)


def _configurations(value: Any) -> tuple[Configuration, ...]:
    shape = "a list of mappings, each with a name and any of " + ", ".join(CONFIGURATION_KEYS)
    if not isinstance(value, list | tuple):
        raise ValueError(f"expected {shape}")
    configurations, names = [], set()
    for item in value:
        if not isinstance(item, dict) or not isinstance(item.get("name"), str):
            raise ValueError(f"expected {shape}")
        name = item["name"]
        if name in names:
            raise ValueError(f"configuration {name!r} is named twice")
        names.add(name)
        overrides = []
        for key, raw in item.items():
            if key == "name":
                continue
            if key not in CONFIGURATION_KEYS:
                raise ValueError(f"configuration {name!r}: {key!r} cannot vary; {shape}")
            try:
                overrides.append((key, _PARSERS[key](raw)))
            except ValueError as exc:
                raise ValueError(f"configuration {name!r}: {key}: {exc}") from None
        configurations.append(Configuration(name, tuple(overrides)))
    return tuple(configurations)


def _size(value: Any) -> int:
    try:
        size = parse_size(value)
    except ValueError:
        raise ValueError("expected a size such as 10MiB, 4KiB or 1048576") from None
    if size < 0:
        raise ValueError("expected a size >= 0")
    return size


def _object_sizes(value: Any) -> ObjectSizes:
    shape = (
        "expected a size (10MiB), DISTRIBUTION:MIN..MAX (log-uniform:4KiB..64MiB) or a mapping "
        f"{{distribution, min, max}}; distributions: {', '.join(DISTRIBUTIONS)}"
    )
    if isinstance(value, dict):
        if set(value) - {"distribution", "min", "max"} or "distribution" not in value:
            raise ValueError(shape)
        distribution, low, high = value["distribution"], value.get("min"), value.get("max")
    elif isinstance(value, str) and ":" in value:
        distribution, _, bounds = value.partition(":")
        low, sep, high = bounds.partition("..")
        if not sep:
            raise ValueError(shape)
    else:
        return _at_most_5_tib(ObjectSizes.fixed(_size(value)))
    distribution = str(distribution).strip().lower()
    if distribution == "fixed":
        return _at_most_5_tib(ObjectSizes.fixed(_size(low)))
    if low is None or high is None:
        raise ValueError(shape)
    return _at_most_5_tib(ObjectSizes(distribution, _size(low), _size(high)))


def _at_most_5_tib(sizes: ObjectSizes) -> ObjectSizes:
    if sizes.largest > MAX_OBJECT_SIZE:
        raise ValueError("an S3 object is at most 5 TiB")
    return sizes


def _op_log(value: Any) -> str:
    text = _parse_str(value).strip()
    if not text.endswith(".tsv.zst"):
        raise ValueError(
            "expected a path ending in .tsv.zst (each engine writes NAME-HOST-PID.tsv.zst)"
        )
    return text


def _rate_limit(value: Any) -> RateLimit:
    return RateLimit.parse(_parse_str(value))


class SecretValue(ValueError):
    """A refused value that may hold a secret: the refusal never repeats it."""


def _endpoint(value: Any) -> str:
    text = _parse_str(value).strip().rstrip("/")
    shape = "expected an http:// or https:// URL such as http://127.0.0.1:9000"
    if not re.match(r"^https?://[^/\s]+$", text):
        raise ValueError(shape)
    parts = urlsplit(text)
    if "@" in parts.netloc:
        raise SecretValue(
            "credentials do not belong in the URL: give them as AWS_ACCESS_KEY_ID and "
            "AWS_SECRET_ACCESS_KEY (or a profile)"
        )
    try:
        port = parts.port
    except ValueError:
        port = -1
    if (port is not None and not 1 <= port <= 65535) or not parts.hostname:
        raise ValueError(f"{shape}, with a port in 1..65535")
    return text


MAX_ENDPOINTS = 1024
_RANGE = re.compile(r"\{(\d+)\.\.\.(\d+)\}")


def _expand(text: str) -> list[str]:
    """warp's `host{1...8}` ranges, every combination in order (`{01...16}` keeps the zeros)."""
    match = _RANGE.search(text)
    if match is None:
        return [text]
    low, high = match[1], match[2]
    if int(low) > int(high):
        raise ValueError(f"{match[0]} counts down; write the smaller number first")
    width = len(low) if low.startswith("0") else 0
    head, tail = text[: match.start()], text[match.end() :]
    return [
        url
        for number in range(int(low), int(high) + 1)
        for url in _expand(f"{head}{number:0{width}d}{tail}")
    ][: MAX_ENDPOINTS + 1]


def _endpoints(value: Any) -> tuple[str, ...]:
    """One endpoint URL or several (a list, or one string separated by commas or spaces)."""
    urls = [url for item in _listed(value) for url in _expand(item)]
    if not urls:
        raise ValueError("expected an http:// or https:// URL, or a list of them")
    if len(urls) > MAX_ENDPOINTS:
        raise ValueError(f"at most {MAX_ENDPOINTS} endpoints")
    parsed = tuple(_endpoint(url) for url in urls)
    repeated = sorted({url for url in parsed if parsed.count(url) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]} is listed twice")
    return parsed


def _copy_location(value: Any) -> str:
    """A local path, or s3://bucket[/prefix]."""
    text = _parse_str(value).strip()
    if text.startswith("s3://") and not S3Location.parse(text).bucket:
        raise ValueError("expected s3://BUCKET/PREFIX")
    if "://" in text and not text.startswith("s3://"):
        raise ValueError("expected a local path or s3://BUCKET/PREFIX")
    return text


def _patterns(value: Any) -> tuple[str, ...]:
    return () if _unset(value) else tuple(_listed(value))


def _bind_addresses(value: Any) -> tuple[str, ...]:
    """Local IP addresses or interface names (resolved on each node); none by default."""
    if _unset(value):
        return ()
    names = tuple(_listed(value))
    bad = next((n for n in names if not re.fullmatch(r"[\w.:%-]+", n)), None)
    if bad is not None:
        raise ValueError(f"{bad!r} is neither an IP address nor an interface name")
    return names


def _model_size(value: Any) -> int:
    size = _size(value)
    if not 1 <= size <= MAX_OBJECT_SIZE * 1000:
        raise ValueError("expected a size from 1 byte to 5 PiB (at most 5 TiB per actor's shard)")
    return size


def _byte_count(value: Any) -> int:
    """A size, where DLIO's files may give a mean as a fraction of a byte (114660.07)."""
    return _size(round(value) if isinstance(value, float) else value)


def _sample_size(value: Any) -> int:
    size = _byte_count(value)
    if not 1 <= size <= MAX_OBJECT_SIZE:
        raise ValueError("expected a size from 1 byte to 5 TiB")
    return size


def _bucket(value: Any) -> str:
    text = _parse_str(value).strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", text):
        raise ValueError("expected 3-63 lowercase letters, digits, dots and hyphens")
    return text


def aws_bucket_name_problem(name: str) -> str | None:
    """What AWS S3's naming rules refuse in a name the plain pattern allows, or None."""
    if ".." in name or ".-" in name or "-." in name:
        return "no two dots in a row, and no dot beside a hyphen"
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", name):
        return "not formatted as an IP address"
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return "no reserved prefix (xn--, sthree-) or suffix (-s3alias, --ol-s3)"
    return None


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _parse_str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text

    return parse


def setting(
    default: Any,
    parse: Callable[[Any], Any],
    group: str,
    help: str,
    env: tuple[str, ...] = (),
    repeat: bool = False,
) -> Any:
    """A field of Settings with everything the configuration layer needs to know of it.

    `env`: the variables that set it, strongest first; `repeat`: its command-line flag may be
    given several times, the values together replacing the workload's.
    """
    assert group in GROUPS, group
    metadata = {"parse": parse, "group": group, "help": help, "env": env, "repeat": repeat}
    return field(default=default, metadata=metadata)


DEFAULT_OBJECT_SIZE = ObjectSizes.fixed(10 * MIB)
DEFAULT_MIX = (("get", 60.0), ("put", 20.0), ("stat", 10.0), ("delete", 10.0))


@dataclass(frozen=True)
class Settings:
    """Everything one run needs to know. Secrets are never part of it."""

    # workload
    name: str = setting("quick", _parse_str, "workload", "workload name (names result files)")
    objects: int = setting(100, _int_range(1, 10**12), "workload", "number of objects")
    object_size: ObjectSizes = setting(
        DEFAULT_OBJECT_SIZE,
        _object_sizes,
        "workload",
        "object size (10MiB) or distribution (log-uniform:4KiB..64MiB, uniform:...)",
    )
    phases: tuple[PhaseEntry, ...] = setting(
        tuple(PhaseEntry(p) for p in (Phase.PUT, Phase.GET, Phase.CLEANUP)),
        _phases,
        "workload",
        "comma-separated phases: put,get,mixed,sleep,cleanup",
    )
    sleep_s: float = setting(
        30.0, _float_range(0, 86_400), "workload", "how long a sleep phase pauses"
    )
    duration_s: float | None = setting(
        None,
        _optional(_float_range(0.1, 30 * 86_400)),
        "workload",
        "run each PUT/GET/mixed phase for this many seconds (a mixed run's prefill PUT still "
        "writes its keys once)",
    )
    autoterm: bool = setting(
        False,
        _parse_bool,
        "workload",
        "end each phase once its throughput is steady (see --autoterm-window/-pct)",
    )
    autoterm_window_s: float = setting(
        10.0,
        _float_range(2, 86_400),
        "workload",
        "autoterm: the window over which throughput must be steady (default 10)",
    )
    autoterm_pct: float = setting(
        7.5, _float_range(0.1, 100), "workload", "autoterm: how steady, in percent (default 7.5)"
    )
    rate_limit: RateLimit | None = setting(
        None,
        _optional(_rate_limit),
        "workload",
        "cap for the whole cluster: 500 ops/s, 1.5 GB/s, 200 MiB/s",
    )
    mix: tuple[tuple[str, float], ...] = setting(
        DEFAULT_MIX,
        _mix,
        "workload",
        "mixed phase: weight of each operation (get, put, stat, delete)",
    )
    source: Source = setting(
        Source.GENERATED,
        _enum(Source),
        "workload",
        "what get, stat, delete, list and mixed reads use: generated (this run's keys) or "
        "existing (the objects under prefix in bucket, or a manifest's)",
    )
    manifest: str | None = setting(
        None,
        _optional(_parse_str),
        "workload",
        "with source: existing, a file of keys (one per line, optionally KEY<TAB>SIZE) read "
        "instead of listing",
    )
    epochs: int = setting(1, _int_range(1, 1_000_000), "workload", "passes a get or stat makes")
    allow_delete_existing: bool = setting(
        False,
        _parse_bool,
        "workload",
        "let a delete phase with source: existing remove objects this tool did not write",
    )
    page_size: int = setting(1000, _int_range(1, 1000), "workload", "keys per LIST page")
    model_size: int = setting(
        1024**3,
        _model_size,
        "workload",
        "checkpoint phase: bytes of the model every checkpoint writes, shared by the actors",
    )
    delete_batch: int = setting(
        1000, _int_range(1, 1000), "workload", "keys per DeleteObjects request"
    )
    # training (DLIO's names; its sections dataset/reader/train/checkpoint/metric read as-is)
    num_files_train: int = setting(
        64, _int_range(1, 10**9), "training", "dataset: files of samples the datagen writes"
    )
    num_samples_per_file: int = setting(
        1, _int_range(1, 10**6), "training", "dataset: samples per file (1: a file is a sample)"
    )
    record_length_bytes: int = setting(
        128 * 1024, _sample_size, "training", "dataset: mean bytes per sample"
    )
    record_length_bytes_stdev: int = setting(
        0,
        _byte_count,
        "training",
        "dataset: standard deviation of the sample size (sizes kept within 3 deviations)",
    )
    batch_size: int = setting(1, _int_range(1, 10**6), "training", "reader: samples per step")
    read_threads: int = setting(
        4, _int_range(1, 1024), "training", "reader: samples each accelerator reads at once"
    )
    prefetch_size: int = setting(
        2, _int_range(0, 1024), "training", "reader: batches read ahead of the step computing"
    )
    file_shuffle: Shuffle = setting(
        Shuffle.OFF, _enum(Shuffle), "training", "reader: file order per epoch: off, seed, random"
    )
    sample_shuffle: Shuffle = setting(
        Shuffle.OFF,
        _enum(Shuffle),
        "training",
        "reader: sample order per epoch, across files: off, seed, random",
    )
    computation_time: float = setting(
        0.0, _float_range(0, 3600), "training", "train: seconds of compute per step (a sleep)"
    )
    accelerators_per_node: int = setting(
        1, _int_range(1, 4096), "training", "train: simulated accelerators per node"
    )
    au_threshold: float | None = setting(
        None,
        _optional(_float_range(0, 1)),
        "training",
        "metric.au: the accelerator utilization a train phase must reach to pass (0.9: 90 percent)",
    )
    find_max_accelerators: bool = setting(
        False,
        _parse_bool,
        "training",
        "search the most accelerators_per_node whose AU holds au_threshold (one-epoch tries)",
    )
    memory_budget_mb: int | None = setting(
        None,
        _optional(_int_range(1, 10**7)),
        "training",
        "train: MiB per actor for samples in flight and prefetched (default: no cap)",
    )
    verify: bool = setting(True, _parse_bool, "workload", "check every byte read back")
    seed: int | None = setting(None, _optional(_parse_int), "workload", "seed for object content")
    run_id: str | None = setting(
        None, _optional(_parse_str), "workload", "run id (names the key prefix)"
    )
    prefix: str = setting("s3dlio-ray", _parse_str, "workload", "key prefix above the run id")
    configurations: tuple[Configuration, ...] = setting(
        (),
        _configurations,
        "workload",
        "configurations run in turn on the same keys: [{name, client, concurrency, ...}]",
    )
    client: Client = setting(
        Client.ENGINE, _enum(Client), "workload", "engine (this project) or boto3 (the baseline)"
    )
    # copy (s3dlio-ray cp: phases upload or download)
    copy_from: str | None = setting(
        None,
        _optional(_copy_location),
        "copy",
        "what an upload or download phase copies: a local file or folder, or s3://BUCKET/PREFIX",
    )
    copy_to: str | None = setting(
        None,
        _optional(_copy_location),
        "copy",
        "where it copies to: s3://BUCKET/PREFIX, or a local path ({node}: each node's name)",
    )
    recursive: bool = setting(
        False, _parse_bool, "copy", "copy a whole folder, or every object under the prefix"
    )
    include: tuple[str, ...] = setting(
        (),
        _patterns,
        "copy",
        "copy what matches this pattern (of the path below the source) even if excluded",
        repeat=True,
    )
    exclude: tuple[str, ...] = setting(
        (), _patterns, "copy", "leave out what matches this pattern (*.tmp, logs/*)", repeat=True
    )
    per_node: bool = setting(
        False,
        _parse_bool,
        "copy",
        "download: every node gets the whole set on its own local path (a training cache)",
    )
    sync: bool = setting(
        False,
        _parse_bool,
        "copy",
        "skip what is already at the destination with the same size and checksum (a resume)",
    )
    clobber: bool = setting(
        True, _parse_bool, "copy", "overwrite what is at the destination (--no-clobber: skip it)"
    )
    checksum_headers: bool = setting(
        True,
        _parse_bool,
        "copy",
        "send each object's CRC32 (per part) for the store to check; the manifest is kept anyway",
    )
    # tuning
    concurrency: int | None = setting(
        None,
        _optional(_concurrency),
        "tuning",
        "auto or a fixed number of requests in flight",
        env=("S3DLIO_CONCURRENCY",),
    )
    target_gbps: float | None = setting(
        None,
        _optional(_float_range(0.001, 10_000)),
        "tuning",
        "target throughput: start concurrency from it and adapt toward it",
        env=("S3DLIO_TARGET_GBPS",),
    )
    controller: str | None = setting(
        None,
        _optional(_choice("actor", "cluster")),
        "tuning",
        "actor (each actor adapts alone) or cluster (the driver steers all actors as one); "
        "cluster when cluster_target_gbps is set, else actor",
        env=("S3DLIO_CONTROLLER",),
    )
    cluster_target_gbps: float | None = setting(
        None,
        _optional(_float_range(0.001, 1_000_000)),
        "tuning",
        "target throughput of the whole cluster (GB/s), steered by the driver",
        env=("S3DLIO_CLUSTER_TARGET_GBPS",),
    )
    min_concurrency: int = setting(8, _int_range(1, 4096), "tuning", "lowest concurrency (auto)")
    max_concurrency: int = setting(256, _int_range(1, 4096), "tuning", "highest concurrency (auto)")
    profile: str = setting(
        "auto", _choice("auto", *PROFILES), "tuning", "auto, aws or high-performance"
    )
    part_size_mb: int = setting(
        10,
        _int_range(MIN_PART_SIZE // MIB, MAX_PART_SIZE // MIB),
        "tuning",
        "multipart part size in MiB (5..5120)",
        env=("S3DLIO_PART_SIZE_MB",),
    )
    adapt_interval_s: float = setting(
        0.5, _float_range(0.05, 60), "tuning", "how often the controller looks at throughput"
    )
    # transport
    endpoint: tuple[str, ...] | None = setting(
        None,
        _optional(_endpoints),
        "transport",
        "S3 endpoint URL; repeat it (or list them) for a cluster's gateways, host{1...8} "
        "expands (default: AWS_ENDPOINT_URL, else an embedded moto server)",
        env=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        repeat=True,
    )
    endpoint_policy: EndpointPolicy = setting(
        EndpointPolicy.ROUND_ROBIN,
        _enum(EndpointPolicy),
        "transport",
        "which endpoint each request goes to: round-robin or least-busy",
    )
    resolve_host: bool = setting(
        False,
        _parse_bool,
        "transport",
        "an endpoint whose host name resolves to several addresses becomes one per address",
    )
    bind_addresses: tuple[str, ...] = setting(
        (),
        _bind_addresses,
        "transport",
        "local addresses or interface names; a node's actors spread over them (one per NIC)",
        repeat=True,
    )
    bucket: str | None = setting(
        None,
        _optional(_bucket),
        "transport",
        "bucket to use (default: a new bucket, removed at the end)",
    )
    remove_bucket: BucketRemoval = setting(
        BucketRemoval.CREATED,
        _enum(BucketRemoval),
        "transport",
        "remove the bucket at cleanup: created (if this run made it), always or never",
    )
    region: str | None = setting(None, _optional(_parse_str), "transport", "signing region")
    aws_profile: str | None = setting(
        None, _optional(_parse_str), "transport", "AWS profile for credentials"
    )
    ca_bundle: str | None = setting(
        None,
        _optional(_parse_str),
        "transport",
        "CA certificates (PEM) for https:// endpoints",
        env=("AWS_CA_BUNDLE",),
    )
    insecure: bool = setting(
        False,
        _parse_bool,
        "transport",
        "do not verify the endpoint's TLS certificate (a lab endpoint with a self-signed one)",
    )
    allow_http: bool = setting(
        False,
        _parse_bool,
        "transport",
        "allow plain http:// to an AWS endpoint (bodies would cross the network unencrypted)",
    )
    http2: bool = setting(
        False,
        _parse_bool,
        "transport",
        "use HTTP/2 (non-AWS endpoints only)",
        env=("S3DLIO_ENABLE_HTTP2",),
    )
    io_uring: bool = setting(
        False,
        _parse_bool,
        "transport",
        "accepted for compatibility; has no effect",
        env=("S3DLIO_ENABLE_IO_URING",),
    )
    connect_timeout_s: float = setting(
        10.0, _float_range(0.1, 600), "transport", "connect timeout in seconds"
    )
    timeout_s: float = setting(
        30.0, _float_range(0.1, 3600), "transport", "idle timeout in seconds"
    )
    max_attempts: int = setting(5, _int_range(1, 20), "transport", "attempts per request")
    # cluster
    executor: Executor = setting(
        Executor.RAY,
        _enum(Executor),
        "cluster",
        "ray (actors on every node, the default) or local (one process, no Ray)",
    )
    ray_address: str | None = setting(
        None,
        _optional(_parse_str),
        "cluster",
        "Ray cluster to join (default: RAY_ADDRESS, a running one, or a new local one)",
    )
    actors_per_node: int | None = setting(
        None,
        _optional(_int_range(1, 1024)),
        "cluster",
        "transfer actors per node (default: the node's free CPUs)",
    )
    # metrics
    metrics_host: str = setting(
        "127.0.0.1",
        _parse_str,
        "metrics",
        "address /metrics binds (default 127.0.0.1)",
        env=("S3DLIO_METRICS_HOST",),
    )
    metrics_port: int | None = setting(
        9477,
        _optional(_metrics_port),
        "metrics",
        "port of /metrics (default 9477; 0: any free port; off: none)",
        env=("S3DLIO_METRICS_PORT",),
    )
    metrics_scrape_interval_s: float = setting(
        15.0, _float_range(0.1, 3600), "metrics", "the scraping Prometheus's interval"
    )
    metrics_linger_s: float | None = setting(
        None,
        _optional(_float_range(0, 3600)),
        "metrics",
        "how long final metrics stay served (default: two scrape intervals)",
    )
    pushgateway_url: str | None = setting(
        None,
        _optional(_endpoint),
        "metrics",
        "Prometheus Pushgateway to push the final metrics to",
    )
    # output
    output: str | None = setting(
        None, _optional(_parse_str), "output", "path of the JSON result file"
    )
    op_log: str | None = setting(
        None,
        _optional(_op_log),
        "output",
        "write an op-log per engine: PATH.tsv.zst -> PATH-HOST-PID.tsv.zst",
    )

    @property
    def part_size(self) -> int:
        return self.part_size_mb * MIB

    @property
    def metrics_linger(self) -> float:
        """How long final metrics stay served: two scrape intervals unless set."""
        if self.metrics_linger_s is not None:
            return self.metrics_linger_s
        return 2 * self.metrics_scrape_interval_s

    @property
    def concurrency_mode(self) -> str:
        if self.concurrency is not None:
            return "fixed"
        if self.cluster_controlled:
            return "cluster"
        return "target" if self.target_gbps else "auto"

    @property
    def cluster_controlled(self) -> bool:
        """Whether the driver steers every actor's concurrency as one cluster."""
        chosen = self.controller or ("cluster" if self.cluster_target_gbps else "actor")
        return chosen == "cluster"

    @property
    def largest_sample(self) -> int:
        """The largest sample the dataset's size distribution draws."""
        return sample_sizes(self.record_length_bytes, self.record_length_bytes_stdev)[1]

    @property
    def memory_budget(self) -> int | None:
        return None if self.memory_budget_mb is None else self.memory_budget_mb * MIB

    @property
    def phase_names(self) -> tuple[Phase, ...]:
        return tuple(entry.phase for entry in self.phases)

    def for_phase(self, index: int) -> Settings:
        """These settings with phase `index`'s own options applied."""
        options = self.phases[index].options
        return replace(self, **dict(options)) if options else self

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the workload file's own shape, which load_settings reads back."""
        return {f.name: _plain(getattr(self, f.name)) for f in fields(self)}


def _plain(value: Any) -> Any:
    """A setting's value as YAML/JSON data."""
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, ObjectSizes):
        if value.distribution == "fixed":
            return value.minimum
        return {"distribution": value.distribution, "min": value.minimum, "max": value.maximum}
    if isinstance(value, RateLimit):
        return f"{value.per_s!r} ops/s" if value.unit == "ops" else f"{int(value.per_s)} B/s"
    if isinstance(value, PhaseEntry):
        options = {k: _plain(v) for k, v in value.options}
        return {str(value.phase): options} if options else str(value.phase)
    if isinstance(value, Configuration):
        return {"name": value.name, **{k: _plain(v) for k, v in value.overrides}}
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return {k: _plain(v) for k, v in value}
    if isinstance(value, tuple):
        return [_plain(v) for v in value]
    return value


_PARSERS: dict[str, Callable[[Any], Any]] = {f.name: f.metadata["parse"] for f in fields(Settings)}

ENVIRONMENT: dict[str, str] = {
    variable: f.name for f in fields(Settings) for variable in f.metadata["env"]
}
"""Variable -> key, strongest first for a key several variables set."""


DLIO_SECTIONS: dict[str, dict[str, str]] = {
    "dataset": {
        "num_files_train": "num_files_train",
        "num_samples_per_file": "num_samples_per_file",
        "record_length_bytes": "record_length_bytes",
        "record_length": "record_length_bytes",
        "record_length_bytes_stdev": "record_length_bytes_stdev",
        "record_length_stdev": "record_length_bytes_stdev",
        "record_length_std": "record_length_bytes_stdev",
    },
    "reader": {
        "batch_size": "batch_size",
        "read_threads": "read_threads",
        "prefetch_size": "prefetch_size",
        "file_shuffle": "file_shuffle",
        "sample_shuffle": "sample_shuffle",
    },
    "train": {"epochs": "epochs", "computation_time": "computation_time"},
    "checkpoint": {"model_size": "model_size"},
    "model": {"model_size": "model_size"},
    "metric": {"au": "au_threshold"},
    "workflow": {},
    "framework": {},
    "profiling": {},
    "evaluation": {},
}
"""A DLIO workload file's sections: each key this tool reads, and the setting it sets. Keys
not listed are DLIO's alone (formats, folders, framework): named in one warning."""

NAMED_BY_A_STRING = ("framework", "model")
"""DLIO sections that may be one string (`framework: pytorch`, `model: resnet50`)."""

WORKFLOW = (
    ("generate_data", Phase.DATAGEN),
    ("train", Phase.TRAIN),
    ("checkpoint", Phase.CHECKPOINT),
)


def dlio_sections(raw: Mapping[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """The settings a mapping gives, its DLIO sections read as flat keys (`dataset:
    {num_files_train: 8}` is `num_files_train: 8`), and the DLIO keys it has that nothing
    reads. `workflow` chooses the phases when `phases` is not given."""
    flat: dict[str, Any] = {}
    unused: list[str] = []
    for key, value in raw.items():
        if key not in DLIO_SECTIONS:
            flat[key] = value
            continue
        if not isinstance(value, Mapping):
            if key not in NAMED_BY_A_STRING:
                raise ConfigError(f"{source}: {key}: expected a mapping of DLIO's {key} keys")
            unused.append(key)
            continue
        if key == "workflow" and "phases" not in raw:
            flat["phases"] = _workflow_phases(value, source)
            unused += [f"workflow.{k}" for k in value if k not in dict(WORKFLOW)]
            continue
        for inner, item in value.items():
            target = DLIO_SECTIONS[key].get(inner)
            if target is None:
                unused.append(f"{key}.{inner}")
            else:
                flat[target] = item
    return flat, unused


def _workflow_phases(workflow: Mapping[str, Any], source: str) -> list[str]:
    """The phases DLIO's `workflow` switches on, in DLIO's order."""
    phases = []
    for name, phase in WORKFLOW:
        value = workflow.get(name)
        try:
            on = bool(value) and _parse_bool(value)
        except ValueError as exc:
            raise ConfigError(f"{source}: workflow.{name}: {exc}") from None
        if on:
            phases.append(str(phase))
    if not phases:
        raise ConfigError(f"{source}: workflow: turn on generate_data, train or checkpoint")
    return phases


def parse_values(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Each setting of `raw` read by its own parser; ConfigError naming the first bad one."""
    values: dict[str, Any] = {}
    _apply(values, raw, source)
    return values


def _apply(values: dict[str, Any], raw: Mapping[str, Any], source: str) -> None:
    for key, value in raw.items():
        parse = _PARSERS.get(key)
        if parse is None:
            allowed = ", ".join(sorted(_PARSERS))
            raise ConfigError(f"{source}: unknown key {key!r}; allowed keys: {allowed}")
        try:
            values[key] = parse(value)
        except SecretValue as exc:
            raise ConfigError(f"{source}: {key}: {exc}") from None
        except ValueError as exc:
            raise ConfigError(f"{source}: {key}: {exc} (got {value!r})") from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text()
    except OSError as exc:
        raise ConfigError(f"cannot read workload file {path}: {exc.strerror}") from None
    try:
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" at line {mark.line + 1}" if mark else ""
        raise ConfigError(f"{path}: not valid YAML{where}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: expected a mapping of settings at the top level")
    return data


def parse_assignment(text: str) -> dict[str, Any]:
    """`KEY=VALUE` from the command line (`--set`): the value read as YAML (so lists and
    mappings can be given), a dotted key as nested mappings (`dataset.num_files=8`)."""
    key, sep, raw = text.partition("=")
    key = key.strip()
    if not sep or not key:
        raise ConfigError(f"--set {text!r}: expected KEY=VALUE")
    try:
        value = yaml.safe_load(raw) if raw.strip() else raw
    except yaml.YAMLError:
        raise ConfigError(f"--set {text!r}: the value is not valid YAML") from None
    for part in reversed(key.split(".")[1:]):
        value = {part: value}
    return {key.split(".")[0]: value}


def _check(settings: Settings) -> None:
    """What no single key can say alone: settings that contradict each other."""
    if settings.min_concurrency > settings.max_concurrency:
        raise ConfigError(
            f"min_concurrency ({settings.min_concurrency}) must not exceed max_concurrency "
            f"({settings.max_concurrency})"
        )
    check_controller(settings)
    for index, entry in enumerate(settings.phases):
        phase = settings.for_phase(index)
        if entry.phase == Phase.MIXED and phase.duration_s is None:
            raise ConfigError("phases: mixed runs for a time: set duration_s (--duration SECONDS)")
        if phase.source == Source.EXISTING:
            _check_existing(entry.phase, phase)
        if entry.phase == Phase.RESTORE and Phase.CHECKPOINT not in settings.phase_names[:index]:
            raise ConfigError(
                "phases: restore reads back a checkpoint: put a checkpoint phase before it"
            )
        if entry.phase == Phase.TRAIN:
            _check_train(settings, phase, index)
        if (
            entry.phase == Phase.LIST
            and phase.source != Source.EXISTING
            and (phase.objects > LISTED_IN_ORDER)
        ):
            raise ConfigError(
                f"phases: list splits a run's key space in name order, which is index order up "
                f"to {LISTED_IN_ORDER:,} objects (obj-NNNNNNNN); use fewer objects for a list "
                "phase, or list them as existing data (source: existing)"
            )
    if {Phase.UPLOAD, Phase.DOWNLOAD} & set(settings.phase_names):
        _check_copy(settings)
    if settings.find_max_accelerators and Phase.TRAIN not in settings.phase_names:
        raise ConfigError("find_max_accelerators: it searches a train phase; add one to phases")
    if settings.op_log and settings.client == Client.BOTO3:
        raise ConfigError("op_log: the boto3 baseline keeps no op-log; set client: engine")
    if settings.bind_addresses and settings.client == Client.BOTO3:
        raise ConfigError(
            "bind_addresses: the boto3 baseline cannot choose its source address; set client: "
            "engine, or leave bind_addresses out"
        )
    if len(settings.endpoint or ()) > 1 and settings.client == Client.BOTO3:
        raise ConfigError(
            "endpoint: the boto3 baseline talks to one endpoint; give one, or set client: engine"
        )
    endpoints = settings.endpoint or ()
    aws = any(is_aws_endpoint(url) for url in endpoints)
    plain = any(is_aws_endpoint(url) and url.startswith("http://") for url in endpoints)
    if plain and not settings.allow_http:
        raise ConfigError(
            "endpoint: plain http:// to AWS sends every object unencrypted: use https://, or "
            "set allow_http: true"
        )
    problem = aws_bucket_name_problem(settings.bucket) if settings.bucket else None
    if problem and aws:
        raise ConfigError(f"bucket: {settings.bucket!r} breaks AWS's naming rules: {problem}")


LISTED_IN_ORDER = 10**8
"""Up to here a run's object names (eight digits) sort as their indices."""

READS_EXISTING = (Phase.GET, Phase.STAT, Phase.DELETE, Phase.LIST, Phase.MIXED, Phase.TRAIN)


def _check_copy(settings: Settings) -> None:
    if settings.copy_from is None or settings.copy_to is None:
        raise ConfigError("phases: upload and download copy files: set copy_from and copy_to")
    if settings.endpoint is None:
        raise ConfigError(
            "cp: give the endpoint (--endpoint URL, or AWS_ENDPOINT_URL): a copy into an "
            "embedded endpoint would vanish with it"
        )
    if settings.client == Client.BOTO3:
        raise ConfigError("cp: the boto3 baseline does not copy files; set client: engine")
    if settings.sync and not settings.clobber:
        raise ConfigError(
            "sync overwrites what differs, no_clobber skips whatever is there: choose one"
        )


def check_controller(settings: Settings) -> None:
    if settings.cluster_target_gbps and settings.controller == "actor":
        raise ConfigError(
            "cluster_target_gbps: the driver steers the cluster to it; leave controller unset "
            "(or cluster), or give each actor target_gbps instead"
        )
    if not settings.cluster_controlled:
        return
    if settings.concurrency is not None:
        raise ConfigError(
            "controller: cluster steers the concurrency; a fixed concurrency leaves it nothing "
            "to steer: unset concurrency, or the cluster controller"
        )
    if settings.target_gbps:
        raise ConfigError(
            "target_gbps is each actor's own target; with the cluster controller give "
            "cluster_target_gbps (the whole cluster's) instead"
        )


def _check_train(settings: Settings, phase: Settings, index: int) -> None:
    if phase.find_max_accelerators and phase.au_threshold is None:
        raise ConfigError(
            "find_max_accelerators: the search keeps AU at au_threshold: set one (metric.au, "
            "MLPerf Storage's 0.9 for unet3d and resnet50, 0.7 for cosmoflow)"
        )
    generated = phase.source == Source.GENERATED
    if generated and Phase.DATAGEN not in settings.phase_names[:index] and not settings.run_id:
        raise ConfigError(
            "phases: train reads the dataset a datagen phase writes: put datagen before it, "
            "give the run_id of the run that wrote it, or read existing data (source: existing)"
        )
    if generated:
        refuse_a_batch_over_budget(phase, phase.largest_sample)


def refuse_a_batch_over_budget(settings: Settings, largest_sample: int) -> None:
    """A batch is held whole while it computes: one must fit the memory budget."""
    batch = settings.batch_size * largest_sample
    if settings.memory_budget is not None and batch > settings.memory_budget:
        raise ConfigError(
            f"memory_budget_mb: {settings.memory_budget_mb} MiB cannot hold one batch of "
            f"{settings.batch_size} samples of up to {largest_sample:,} bytes "
            f"({-(-batch // MIB)} MiB); raise memory_budget_mb or lower batch_size"
        )


def _check_existing(phase: Phase, settings: Settings) -> None:
    if phase not in READS_EXISTING:
        raise ConfigError(
            f"phases: {phase} cannot use source: existing; it applies to "
            f"{', '.join(READS_EXISTING)}"
        )
    if settings.bucket is None:
        raise ConfigError(
            f"phases: {phase} with source: existing reads a bucket that holds data: set bucket"
        )
    if phase == Phase.DELETE and not settings.allow_delete_existing:
        raise ConfigError(
            "phases: delete with source: existing would remove objects this tool did not write; "
            "set allow_delete_existing: true on that phase if that is what you want"
        )
    if settings.manifest is not None and not Path(settings.manifest).is_file():
        raise ConfigError(f"manifest: {settings.manifest} is not a readable file")


def load_settings(
    workload: str | Path | Mapping[str, Any] | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the workload (a YAML file or a mapping), then S3DLIO_* variables, then
    overrides (the command line's, or the API's keyword arguments)."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    unused: list[str] = []
    if workload is not None:
        where = "workload" if isinstance(workload, Mapping) else str(workload)
        data = workload if isinstance(workload, Mapping) else read_yaml(workload)
        flat, unused = dlio_sections(data, where)
        _apply(values, flat, where)
    from_env: dict[str, Any] = {}
    for variable in reversed(list(ENVIRONMENT)):
        if environ.get(variable, "").strip():
            key = ENVIRONMENT[variable]
            _apply(from_env, {key: environ[variable]}, f"environment variable {variable}")
    values.update(from_env)
    if overrides:
        flat, ignored = dlio_sections(overrides, "command line")
        unused += ignored
        _apply(values, flat, "command line")
    if unused:
        log.warning("DLIO keys this tool does not use, ignored: %s", ", ".join(unused))
    settings = Settings(**values)
    _check(settings)
    for configuration in settings.configurations:
        try:
            _check(replace(settings, **dict(configuration.overrides)))
        except ConfigError as exc:
            raise ConfigError(f"configuration {configuration.name!r}: {exc}") from None
    problem = aws_bucket_name_problem(settings.bucket) if settings.bucket else None
    if problem:
        log.warning(
            "bucket: %r breaks AWS's naming rules (%s); other stores may accept it",
            settings.bucket,
            problem,
        )
    if settings.insecure:
        log.warning("insecure: the endpoint's TLS certificate is not verified")
    if settings.io_uring:
        log.warning(
            "io_uring: S3DLIO_ENABLE_IO_URING has no effect (removed upstream in s3dlio "
            "0.8.0: no benefit for network I/O); ignoring it"
        )
    return settings

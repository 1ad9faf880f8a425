"""How each setting's value is read: the parsers a setting is declared with (one line naming what
is allowed when a value is wrong), the small types they produce, and `plain()`, the way back to
the workload file's data."""

from __future__ import annotations

import difflib
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from enum import StrEnum
from typing import Any
from urllib.parse import urlsplit

from s3dlio_ray._internal.model.copy_plan import S3Location
from s3dlio_ray._internal.model.open_loop import Arrival
from s3dlio_ray._internal.model.sizes import DISTRIBUTIONS, ObjectSizes
from s3dlio_ray._internal.model.units import parse_size, rate_unit
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.tuning.pacing import RateLimit
from s3dlio_ray._internal.tuning.parts import MAX_OBJECT_SIZE


class Client(StrEnum):
    """Who moves the bytes: this project's engine, or boto3 (the baseline)."""

    ENGINE = "engine"
    BOTO3 = "boto3"


class Executor(StrEnum):
    """Where the engines run: Ray actors on every node, one engine in this process, or (auto)
    this process for a small job when no Ray cluster is running, Ray otherwise."""

    AUTO = "auto"
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


GROUPS = (
    "workload",
    "training",
    "copy",
    "replay",
    "tuning",
    "transport",
    "cluster",
    "metrics",
    "output",
)
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
    "arrival",
    "source",
    "manifest",
    "epochs",
    "allow_delete_existing",
    "page_size",
    "delete_batch",
    "model_size",
    "computation_time",
    "accelerators_per_node",
    "exclude_start_steps",
    "exclude_end_steps",
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


def parse_bool(value: Any) -> bool:
    if isinstance(value, bool):
        return value
    text = str(value).strip().lower()
    if text in ("1", "true", "yes", "on"):
        return True
    if text in ("0", "false", "no", "off"):
        return False
    raise ValueError("expected true or false")


def parse_int(value: Any) -> int:
    if isinstance(value, bool):
        raise ValueError("expected an integer")
    if isinstance(value, int):
        return value
    text = str(value).strip()
    if not re.fullmatch(r"[+-]?\d+", text):
        raise ValueError("expected an integer")
    return int(text)


def parse_float(value: Any) -> float:
    if isinstance(value, bool):
        raise ValueError("expected a number")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise ValueError("expected a number") from None


def parse_str(value: Any) -> str:
    if isinstance(value, (dict, list, bool)) or value is None:
        raise ValueError("expected a string")
    return str(value)


def _unset(value: Any) -> bool:
    """Nothing given: null, an empty string, or "none"."""
    return value is None or (isinstance(value, str) and value.strip().lower() in ("", "none"))


def _listed(value: Any) -> list[str]:
    """The items of a list, or of one string separated by commas or spaces; blanks dropped."""
    items = value if isinstance(value, list | tuple) else re.split(r"[,\s]+", parse_str(value))
    return [text for text in (parse_str(item).strip() for item in items) if text]


def _each_listed(value: Any) -> list[str]:
    """`_listed`, with each item of a list split again: a repeated flag's values may each be
    a list (`--endpoint A,B`, as AWS_ENDPOINT_URL_S3 may be)."""
    return [piece for item in _listed(value) for piece in _listed(item)]


def optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
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


def int_range(lo: int, hi: int) -> Callable[[Any], int]:
    return _in_range(parse_int, lo, hi, "an integer")


def float_range(lo: float, hi: float) -> Callable[[Any], float]:
    return _in_range(parse_float, lo, hi, "a number")


def one_of(kind: type[StrEnum]) -> Callable[[Any], Any]:
    def parse(value: Any) -> Any:
        text = parse_str(value).strip().lower()
        try:
            return kind(text)
        except ValueError:
            raise ValueError(f"expected one of {', '.join(kind)}") from None

    return parse


def parse_concurrency(value: Any) -> int | None:
    if isinstance(value, str) and value.strip().lower() == "auto":
        return None
    try:
        return int_range(1, 4096)(value)
    except ValueError:
        raise ValueError("expected auto or an integer in 1..4096") from None


def parse_metrics_port(value: Any) -> int | None:
    if (isinstance(value, bool) and not value) or str(value).strip().lower() == "off":
        return None
    try:
        return int_range(0, 65535)(value)
    except ValueError:
        raise ValueError("expected off or a port in 0..65535 (0: any free port)") from None


def parse_mix(value: Any) -> tuple[tuple[str, float], ...]:
    shape = f"a mapping of operation to weight, operations from {', '.join(MIX_OPERATIONS)}"
    if not isinstance(value, dict) or not value:
        raise ValueError(f"expected {shape}")
    weights = []
    for op, raw in value.items():
        if op not in MIX_OPERATIONS:
            raise ValueError(f"unknown operation {op!r}; expected {shape}")
        weight = float_range(0, 1e9)(raw)
        weights.append((op, weight))
    if sum(w for _, w in weights) <= 0:
        raise ValueError("the weights must not all be zero")
    return tuple(weights)


def _size(value: Any) -> int:
    try:
        size = parse_size(value)
    except ValueError:
        raise ValueError("expected a size such as 10MiB, 4KiB or 1048576") from None
    if size < 0:
        raise ValueError("expected a size >= 0")
    return size


def parse_object_sizes(value: Any) -> ObjectSizes:
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


def parse_op_log(value: Any) -> str:
    text = parse_str(value).strip()
    if not text.endswith(".tsv.zst"):
        raise ValueError(
            "expected a path ending in .tsv.zst (each engine writes NAME-HOST-PID.tsv.zst)"
        )
    return text


def parse_rate_limit(value: Any) -> RateLimit:
    return RateLimit.parse(parse_str(value))


class SecretValue(ValueError):
    """A refused value that may hold a secret: the refusal never repeats it."""


def parse_endpoint(value: Any) -> str:
    text = parse_str(value).strip().rstrip("/")
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


def parse_endpoints(value: Any) -> tuple[str, ...]:
    """One endpoint URL or several (a list, or one string separated by commas or spaces)."""
    urls = [url for item in _each_listed(value) for url in _expand(item)]
    if not urls:
        raise ValueError("expected an http:// or https:// URL, or a list of them")
    if len(urls) > MAX_ENDPOINTS:
        raise ValueError(f"at most {MAX_ENDPOINTS} endpoints")
    parsed = tuple(parse_endpoint(url) for url in urls)
    repeated = sorted({url for url in parsed if parsed.count(url) > 1})
    if repeated:
        raise ValueError(f"{repeated[0]} is listed twice")
    return parsed


def parse_copy_location(value: Any) -> str:
    """A local path, or s3://bucket[/prefix]."""
    text = parse_str(value).strip()
    if text.startswith("s3://") and not S3Location.parse(text).bucket:
        raise ValueError("expected s3://BUCKET/PREFIX")
    if "://" in text and not text.startswith("s3://"):
        raise ValueError("expected a local path or s3://BUCKET/PREFIX")
    return text


def parse_output(value: Any) -> str:
    """A local path (a .json file or a folder), or s3://BUCKET/PREFIX/."""
    text = parse_str(value).strip()
    if "://" in text and not (text.startswith("s3://") and S3Location.parse(text).bucket):
        raise ValueError("expected a local path or s3://BUCKET/PREFIX/")
    return text


def parse_arrival(value: Any) -> Arrival:
    """`{poisson: 200}` in a workload file, `poisson:200` on the command line."""
    if isinstance(value, str) and ":" in value:
        kind, _, rate = value.partition(":")
        value = {kind.strip(): rate}
    return Arrival.parse(value)


def parse_patterns(value: Any) -> tuple[str, ...]:
    return () if _unset(value) else tuple(_listed(value))


def parse_bind_addresses(value: Any) -> tuple[str, ...]:
    """Local IP addresses or interface names (resolved on each node); none by default."""
    if _unset(value):
        return ()
    names = tuple(_each_listed(value))
    bad = next((n for n in names if not re.fullmatch(r"[\w.:%-]+", n)), None)
    if bad is not None:
        raise ValueError(f"{bad!r} is neither an IP address nor an interface name")
    return names


def parse_model_size(value: Any) -> int:
    size = _size(value)
    if not 1 <= size <= MAX_OBJECT_SIZE * 1000:
        raise ValueError("expected a size from 1 byte to 5 PiB (at most 5 TiB per actor's shard)")
    return size


def parse_byte_count(value: Any) -> int:
    """A size, where DLIO's files may give a mean as a fraction of a byte (114660.07)."""
    return _size(round(value) if isinstance(value, float) else value)


def parse_sample_size(value: Any) -> int:
    size = parse_byte_count(value)
    if not 1 <= size <= MAX_OBJECT_SIZE:
        raise ValueError("expected a size from 1 byte to 5 TiB")
    return size


def parse_bucket(value: Any) -> str:
    text = parse_str(value).strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", text):
        raise ValueError("expected 3-63 lowercase letters, digits, dots and hyphens")
    if re.fullmatch(r"\d+\.\d+\.\d+\.\d+", text):
        raise ValueError("a bucket name is not formatted as an IP address (S3 refuses it)")
    return text


def aws_bucket_name_problem(name: str) -> str | None:
    """What AWS S3's naming rules refuse in a name the plain pattern allows, or None."""
    if ".." in name or ".-" in name or "-." in name:
        return "no two dots in a row, and no dot beside a hyphen"
    if name.startswith(("xn--", "sthree-")) or name.endswith(("-s3alias", "--ol-s3")):
        return "no reserved prefix (xn--, sthree-) or suffix (-s3alias, --ol-s3)"
    return None


def did_you_mean(given: str, known: Iterable[str]) -> str:
    """ "; did you mean X or Y?" for the known names nearest a misspelt one, or nothing."""
    near = difflib.get_close_matches(given, sorted(known), n=3, cutoff=0.75)
    return f"; did you mean {' or '.join(near)}?" if near else ""


def choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = parse_str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text

    return parse


RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]{0,47}")
"""A run id: letters, digits and `-`, at most 48: it names a key prefix, a default bucket
(`s3dlio-ray-ID` within S3's 63), result files and a control registration, so it never holds a
path separator, a dot or anything a bucket refuses."""


def parse_run_id(value: Any) -> str:
    text = parse_str(value).strip()
    if not RUN_ID.fullmatch(text):
        raise ValueError(
            "expected letters, digits and '-' (starting with a letter or digit), at most 48"
        )
    return text


def parse_repeat(value: Any) -> int:
    """How many times `run` runs the workload: 1, or at least 3 (an interval from two runs
    means little)."""
    count = int_range(1, 1000)(value)
    if count == 2:
        raise ValueError("1, or at least 3: an interval from two runs means little")
    return count


def parse_units(value: Any) -> str:
    """The unit summaries print rates in: GB/s, MB/s, GiB/s, MiB/s, decimal or binary."""
    return rate_unit(parse_str(value).strip()).name


def plain(value: Any) -> Any:
    """A setting's value as YAML/JSON data."""
    if isinstance(value, StrEnum):
        return str(value)
    if isinstance(value, ObjectSizes):
        if value.distribution == "fixed":
            return value.minimum
        return {"distribution": value.distribution, "min": value.minimum, "max": value.maximum}
    if isinstance(value, Arrival):
        return value.to_dict()
    if isinstance(value, RateLimit):
        return f"{value.per_s!r} ops/s" if value.unit == "ops" else f"{int(value.per_s)} B/s"
    if isinstance(value, PhaseEntry):
        options = {k: plain(v) for k, v in value.options}
        return {str(value.phase): options} if options else str(value.phase)
    if isinstance(value, Configuration):
        return {"name": value.name, **{k: plain(v) for k, v in value.overrides}}
    if isinstance(value, tuple) and value and isinstance(value[0], tuple):
        return {k: plain(v) for k, v in value}
    if isinstance(value, tuple):
        return [plain(v) for v in value]
    return value

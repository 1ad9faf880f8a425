"""Settings: YAML workload file, S3DLIO_* environment, command line; typed and validated.

This module is the only reader of the S3DLIO_* variables. Precedence: command line >
environment > YAML file > defaults. Every refusal is one line naming the key and what it allows.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from typing import Any

import yaml

from s3dlio_ray.errors import ConfigError
from s3dlio_ray.sizes import DISTRIBUTIONS, ObjectSizes
from s3dlio_ray.tuning.pacing import RateLimit
from s3dlio_ray.tuning.parts import MAX_PART_SIZE, MIB, MIN_PART_SIZE
from s3dlio_ray.tuning.profiles import PROFILES

log = logging.getLogger(__name__)

PHASES = ("put", "get", "mixed", "sleep", "cleanup")
MIX_OPERATIONS = ("get", "put", "stat", "delete")
BUCKET_REMOVAL = ("created", "always", "never")
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmgt]i?b?|b)?\s*$", re.IGNORECASE)
_UNITS = {
    "": 1,
    "b": 1,
    "k": 1000,
    "m": 1000**2,
    "g": 1000**3,
    "t": 1000**4,
    "ki": 1024,
    "mi": 1024**2,
    "gi": 1024**3,
    "ti": 1024**4,
}


CONFIGURATION_KEYS = (
    "client",
    "concurrency",
    "target_gbps",
    "min_concurrency",
    "max_concurrency",
    "http2",
    "actors_per_node",
    "part_size_mb",
    "profile",
)


DEFAULT_OBJECT_SIZE = ObjectSizes.fixed(10 * MIB)


@dataclass(frozen=True)
class Configuration:
    """One of the configurations a workload runs in turn: a name and the settings it changes."""

    name: str
    overrides: tuple[tuple[str, Any], ...]


@dataclass(frozen=True)
class Settings:
    """Everything one run needs to know. Secrets are never part of it."""

    name: str = "quick"
    endpoint: str | None = None
    region: str | None = None
    aws_profile: str | None = None
    ca_bundle: str | None = None
    bucket: str | None = None
    remove_bucket: str = "created"
    prefix: str = "s3dlio-ray"
    run_id: str | None = None
    objects: int = 100
    object_size: ObjectSizes = DEFAULT_OBJECT_SIZE
    phases: tuple[str, ...] = ("put", "get", "cleanup")
    sleep_s: float = 30.0
    duration_s: float | None = None
    autoterm: bool = False
    autoterm_window_s: float = 10.0
    autoterm_pct: float = 7.5
    rate_limit: RateLimit | None = None
    mix: tuple[tuple[str, float], ...] = (
        ("get", 60.0),
        ("put", 20.0),
        ("stat", 10.0),
        ("delete", 10.0),
    )
    verify: bool = True
    seed: int | None = None
    concurrency: int | None = None
    target_gbps: float | None = None
    min_concurrency: int = 8
    max_concurrency: int = 256
    profile: str = "auto"
    part_size_mb: int = 10
    http2: bool = False
    io_uring: bool = False
    adapt_interval_s: float = 0.5
    connect_timeout_s: float = 10.0
    timeout_s: float = 30.0
    max_attempts: int = 5
    output: str | None = None
    op_log: str | None = None
    client: str = "engine"
    executor: str = "ray"
    ray_address: str | None = None
    actors_per_node: int | None = None
    metrics_host: str = "127.0.0.1"
    metrics_port: int | None = 9477
    metrics_scrape_interval_s: float = 15.0
    metrics_linger_s: float | None = None
    pushgateway_url: str | None = None
    configurations: tuple[Configuration, ...] = ()

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
        return "target" if self.target_gbps else "auto"


def parse_size(text: str | int) -> int:
    """Bytes from 1048576, "10MiB", "10 MB", "4k" (k/M/G/T = powers of 1000, Ki/Mi/... of 1024)."""
    if isinstance(text, bool):
        raise ValueError("a size, not a boolean")
    if isinstance(text, int):
        return text
    match = _SIZE.match(str(text))
    if not match:
        raise ValueError(f"not a size: {text!r}")
    number, unit = match.groups()
    unit = (unit or "").lower().rstrip("b")
    return int(float(number) * _UNITS[unit])


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


def _optional(parse: Callable[[Any], Any]) -> Callable[[Any], Any]:
    def parse_optional(value: Any) -> Any:
        if value is None or (isinstance(value, str) and value.strip().lower() in ("", "none")):
            return None
        return parse(value)

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


def _choice(*allowed: str) -> Callable[[Any], str]:
    def parse(value: Any) -> str:
        text = _parse_str(value).strip().lower()
        if text not in allowed:
            raise ValueError(f"expected one of {', '.join(allowed)}")
        return text

    return parse


def _phases(value: Any) -> tuple[str, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"expected a list of phases from {', '.join(PHASES)}")
    phases = tuple(str(p).strip().lower() for p in items)
    unknown = [p for p in phases if p not in PHASES]
    if unknown:
        raise ValueError(f"unknown phase {unknown[0]!r}; expected phases from {', '.join(PHASES)}")
    return phases


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
    if not isinstance(value, list) or not value:
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
        return ObjectSizes.fixed(_size(value))
    distribution = str(distribution).strip().lower()
    if distribution == "fixed":
        return ObjectSizes.fixed(_size(low))
    if low is None or high is None:
        raise ValueError(shape)
    return ObjectSizes(distribution, _size(low), _size(high))


def _op_log(value: Any) -> str:
    text = _parse_str(value).strip()
    if not text.endswith(".tsv.zst"):
        raise ValueError(
            "expected a path ending in .tsv.zst (each engine writes NAME-HOST-PID.tsv.zst)"
        )
    return text


def _rate_limit(value: Any) -> RateLimit:
    return RateLimit.parse(_parse_str(value))


def _endpoint(value: Any) -> str:
    text = _parse_str(value).strip().rstrip("/")
    if not re.match(r"^https?://[^/\s]+$", text):
        raise ValueError("expected an http:// or https:// URL such as http://127.0.0.1:9000")
    return text


def _bucket(value: Any) -> str:
    text = _parse_str(value).strip()
    if not re.fullmatch(r"[a-z0-9][a-z0-9.-]{1,61}[a-z0-9]", text):
        raise ValueError("expected 3-63 lowercase letters, digits, dots and hyphens")
    return text


_PARSERS: dict[str, Callable[[Any], Any]] = {
    "name": _parse_str,
    "endpoint": _optional(_endpoint),
    "region": _optional(_parse_str),
    "aws_profile": _optional(_parse_str),
    "ca_bundle": _optional(_parse_str),
    "bucket": _optional(_bucket),
    "remove_bucket": _choice(*BUCKET_REMOVAL),
    "prefix": _parse_str,
    "run_id": _optional(_parse_str),
    "objects": _int_range(1, 10_000_000),
    "object_size": _object_sizes,
    "phases": _phases,
    "sleep_s": _float_range(0, 86_400),
    "duration_s": _optional(_float_range(0.1, 30 * 86_400)),
    "autoterm": _parse_bool,
    "autoterm_window_s": _float_range(2, 86_400),
    "autoterm_pct": _float_range(0.1, 100),
    "rate_limit": _optional(_rate_limit),
    "mix": _mix,
    "verify": _parse_bool,
    "seed": _optional(_parse_int),
    "concurrency": _concurrency,
    "target_gbps": _optional(_float_range(0.001, 10_000)),
    "min_concurrency": _int_range(1, 4096),
    "max_concurrency": _int_range(1, 4096),
    "profile": _choice("auto", *PROFILES),
    "part_size_mb": _int_range(MIN_PART_SIZE // MIB, MAX_PART_SIZE // MIB),
    "http2": _parse_bool,
    "io_uring": _parse_bool,
    "adapt_interval_s": _float_range(0.05, 60),
    "connect_timeout_s": _float_range(0.1, 600),
    "timeout_s": _float_range(0.1, 3600),
    "max_attempts": _int_range(1, 20),
    "output": _optional(_parse_str),
    "op_log": _optional(_op_log),
    "client": _choice("engine", "boto3"),
    "executor": _choice("ray", "local"),
    "ray_address": _optional(_parse_str),
    "actors_per_node": _optional(_int_range(1, 1024)),
    "metrics_host": _parse_str,
    "metrics_port": _optional(_metrics_port),
    "metrics_scrape_interval_s": _float_range(0.1, 3600),
    "metrics_linger_s": _optional(_float_range(0, 3600)),
    "pushgateway_url": _optional(_endpoint),
    "configurations": _configurations,
}

ENVIRONMENT = {
    "S3DLIO_CONCURRENCY": "concurrency",
    "S3DLIO_TARGET_GBPS": "target_gbps",
    "S3DLIO_ENABLE_HTTP2": "http2",
    "S3DLIO_PART_SIZE_MB": "part_size_mb",
    "S3DLIO_ENABLE_IO_URING": "io_uring",
    "S3DLIO_METRICS_HOST": "metrics_host",
    "S3DLIO_METRICS_PORT": "metrics_port",
    "AWS_ENDPOINT_URL_S3": "endpoint",
    "AWS_ENDPOINT_URL": "endpoint",
}

assert set(_PARSERS) == {f.name for f in fields(Settings)}


def _apply(values: dict[str, Any], raw: Mapping[str, Any], source: str) -> None:
    for key, value in raw.items():
        parse = _PARSERS.get(key)
        if parse is None:
            allowed = ", ".join(sorted(_PARSERS))
            raise ConfigError(f"{source}: unknown key {key!r}; allowed keys: {allowed}")
        try:
            values[key] = parse(value)
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


def _check(settings: Settings) -> None:
    """What no single key can say alone: settings that contradict each other."""
    if settings.min_concurrency > settings.max_concurrency:
        raise ConfigError(
            f"min_concurrency ({settings.min_concurrency}) must not exceed max_concurrency "
            f"({settings.max_concurrency})"
        )
    if "mixed" in settings.phases and settings.duration_s is None:
        raise ConfigError("phases: mixed runs for a time: set duration_s (--duration SECONDS)")
    if "mixed" in settings.phases and settings.client == "boto3":
        raise ConfigError("phases: mixed runs on the engine only; set client: engine")
    if settings.op_log and settings.client == "boto3":
        raise ConfigError("op_log: the boto3 baseline keeps no op-log; set client: engine")


def load_settings(
    path: str | Path | None = None,
    overrides: Mapping[str, Any] | None = None,
    environ: Mapping[str, str] | None = None,
) -> Settings:
    """Defaults, then the YAML file, then S3DLIO_* variables, then command-line overrides."""
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    if path is not None:
        _apply(values, read_yaml(path), str(path))
    from_env: dict[str, Any] = {}
    for variable in reversed(list(ENVIRONMENT)):
        if environ.get(variable, "").strip():
            key = ENVIRONMENT[variable]
            _apply(from_env, {key: environ[variable]}, f"environment variable {variable}")
    values.update(from_env)
    if overrides:
        _apply(values, overrides, "command line")
    settings = Settings(**values)
    _check(settings)
    for configuration in settings.configurations:
        try:
            _check(replace(settings, **dict(configuration.overrides)))
        except ConfigError as exc:
            raise ConfigError(f"configuration {configuration.name!r}: {exc}") from None
    if settings.io_uring:
        log.warning(
            "io_uring: S3DLIO_ENABLE_IO_URING has no effect (removed upstream in s3dlio "
            "0.8.0: no benefit for network I/O); ignoring it"
        )
    return settings

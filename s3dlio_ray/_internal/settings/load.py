"""Settings from where people give them: a YAML workload file (or a mapping), the S3DLIO_*
environment, and overrides (the command line's, or the API's keyword arguments).

This module is the only reader of the S3DLIO_* variables. Precedence: command line >
environment > YAML file > defaults. Every refusal is one line naming the key and what it allows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import yaml

from s3dlio_ray._internal.model.dataset import DEVIATIONS, sample_sizes
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.settings.dlio import DLIO_SECTIONS, dlio_sections
from s3dlio_ray._internal.settings.schema import ENVIRONMENT, Settings, read_value
from s3dlio_ray._internal.settings.values import aws_bucket_name_problem

log = logging.getLogger(__name__)


def parse_values(raw: Mapping[str, Any], source: str) -> dict[str, Any]:
    """Each setting of `raw` read by its own parser; ConfigError naming the first bad one."""
    values: dict[str, Any] = {}
    _apply(values, raw, source)
    return values


def _apply(values: dict[str, Any], raw: Mapping[str, Any], source: str | None) -> None:
    """Each of `raw`'s settings read into `values`; a refusal names `source` (a file, a
    variable) when the key alone does not say where the value came from."""
    for key, value in raw.items():
        try:
            values[key] = read_value(key, value)
        except ConfigError as exc:
            raise ConfigError(f"{source}: {exc}" if source else str(exc)) from None


def read_yaml(path: str | Path) -> dict[str, Any]:
    try:
        text = Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read workload file {path}: {exc.strerror}") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(
            f"{path}: not UTF-8 text (byte {exc.start}): a workload file is YAML in UTF-8"
        ) from None
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


def _into_sections(data: Mapping[str, Any], overrides: Mapping[str, Any]) -> dict[str, Any]:
    """The overrides, each DLIO section they change merged into the workload's own section
    (`--set workflow.generate_data=false` changes that key, the section's others stay)."""
    merged = dict(overrides)
    for key, value in overrides.items():
        theirs = data.get(key)
        if key in DLIO_SECTIONS and isinstance(value, Mapping) and isinstance(theirs, Mapping):
            merged[key] = {**theirs, **value}
    return merged


def _given_keys(overrides: Mapping[str, Any]) -> set[str]:
    """The settings `overrides` name themselves (a DLIO section's keys as the settings they
    set)."""
    given: set[str] = set()
    for key, value in overrides.items():
        if key in DLIO_SECTIONS and isinstance(value, Mapping):
            given |= {DLIO_SECTIONS[key].get(str(inner), str(inner)) for inner in value}
        else:
            given.add(key)
    return given


def _warn_of_a_clipped_sample_size(settings: Settings, given: set[str]) -> None:
    """A sample size's mean changed without its deviation keeps the workload's deviation: say
    so when that makes the sizes clip at one byte (unet3d's 68 MB deviation around a 1 MiB
    mean draws samples of 1 byte to 206 MB)."""
    mean, stdev = settings.record_length_bytes, settings.record_length_bytes_stdev
    overridden = "record_length_bytes" in given and "record_length_bytes_stdev" not in given
    if overridden and mean - DEVIATIONS * stdev < 1:
        largest = sample_sizes(mean, stdev)[1]
        log.warning(
            "record_length_bytes: a mean of %s with the workload's record_length_bytes_stdev of "
            "%s clips samples at 1 byte (sizes 1 to %s); set record_length_bytes_stdev too",
            f"{mean:,}",
            f"{stdev:,}",
            f"{largest:,}",
        )


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
    data: Mapping[str, Any] = {}
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
        flat, ignored = dlio_sections(_into_sections(data, overrides), "command line")
        unused += ignored
        _apply(values, flat, None)
    if unused:
        named = ", ".join(dict.fromkeys(unused))
        log.warning("DLIO keys this tool does not use, ignored: %s", named)
    settings = Settings(**values)
    _warn_of_a_clipped_sample_size(settings, _given_keys(overrides or {}))
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

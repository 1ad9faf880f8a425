"""DLIO's workload files read as they are: its sections (dataset, reader, train, checkpoint,
metric, workflow) map onto flat settings; what this tool does not read is named once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.settings.values import parse_bool

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
            on = bool(value) and parse_bool(value)
        except ValueError as exc:
            raise ConfigError(f"{source}: workflow.{name}: {exc}") from None
        if on:
            phases.append(str(phase))
    if not phases:
        raise ConfigError(f"{source}: workflow: turn on generate_data, train or checkpoint")
    return phases

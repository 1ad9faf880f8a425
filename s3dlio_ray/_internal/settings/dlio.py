"""DLIO's workload files read as they are: its sections (dataset, reader, train, checkpoint,
metric, workflow) map onto flat settings; what this tool does not read is named once."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.settings.values import did_you_mean, parse_bool

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
    "model": {"model_size": "model_size", "model_size_bytes": "model_size"},
    "metric": {
        "au": "au_threshold",
        "exclude_start_steps": "exclude_start_steps",
        "exclude_end_steps": "exclude_end_steps",
    },
    "workflow": {},
    "framework": {},
    "profiling": {},
    "evaluation": {},
    "storage": {},
    "output": {},
}
"""A DLIO workload file's sections: each key this tool reads, and the setting it sets."""

DLIO_ONLY: dict[str, frozenset[str]] = {
    "dataset": frozenset(
        [
            "num_files_eval",
            "record_length_bytes_resize",
            "record_length_resize",
            "generation_buffer_size",
            "data_folder",
            "num_subfolders_train",
            "num_subfolders_eval",
            "enable_chunking",
            "chunk_size",
            "compression",
            "compression_level",
            "file_prefix",
            "format",
            "keep_files",
            "record_element_bytes",
            "record_element_type",
            "record_dims",
            "hdf5",
        ]
    ),
    "reader": frozenset(
        [
            "dont_use_mmap",
            "reader_classname",
            "multiprocessing_context",
            "data_loader",
            "data_loader_classname",
            "data_loader_sampler",
            "computation_threads",
            "batch_size_eval",
            "file_access",
            "shuffle_size",
            "read_type",
            "transfer_size",
            "odirect",
            "preprocess_time",
            "preprocess_time_stdev",
            "pin_memory",
            "transformed_record_dims",
            "transformed_record_element_type",
        ]
    ),
    "train": frozenset(
        ["total_training_steps", "seed_change_epoch", "computation_time_stdev", "seed"]
    ),
    "checkpoint": frozenset(
        [
            "checkpoint_folder",
            "checkpoint_after_epoch",
            "epochs_between_checkpoints",
            "steps_between_checkpoints",
            "type",
            "checkpoint_mechanism_classname",
            "fsync",
            "time_between_checkpoints",
            "num_checkpoints_write",
            "num_checkpoints_read",
            "recovery_rank_shift",
            "rank_sync",
            "mode",
            "randomize_tensor",
            "ksm",
        ]
    ),
    "model": frozenset(
        [
            "name",
            "type",
            "optimization_groups",
            "num_layers",
            "layer_parameters",
            "model_datatype",
            "optimizer_datatype",
            "parallelism",
            "transformer",
        ]
    ),
    "evaluation": frozenset(
        ["eval_time", "eval_time_stdev", "eval_after_epoch", "epochs_between_evals"]
    ),
    "workflow": frozenset(["evaluation", "profiling", "debug"]),
    "profiling": frozenset(["profiler", "iostat_devices"]),
    "storage": frozenset(["storage_type", "storage_root", "storage_options"]),
    "output": frozenset(["folder", "log_file", "metric"]),
    "metric": frozenset(),
    "framework": frozenset(),
}
"""The keys DLIO itself reads that this tool does not (formats, folders, the framework): named
in one warning. Any other key in a DLIO section is a mistake, refused with the nearest names."""

SECTION_ALIASES = {"data_reader": "reader"}
"""DLIO reads its reader section under either name."""

NAMED_BY_A_STRING = ("framework", "model")
"""DLIO sections that may be one string (`framework: pytorch`, `model: resnet50`)."""

WORKFLOW = (
    ("generate_data", Phase.DATAGEN),
    ("train", Phase.TRAIN),
    ("checkpoint", Phase.CHECKPOINT),
)


def dlio_sections(raw: Mapping[str, Any], source: str) -> tuple[dict[str, Any], list[str]]:
    """The settings a mapping gives, its DLIO sections read as flat keys (`dataset:
    {num_files_train: 8}` is `num_files_train: 8`), and the DLIO keys it has that nothing here
    reads. `workflow` chooses the phases when `phases` is not given. A key DLIO does not know
    either is refused, with the nearest names."""
    flat: dict[str, Any] = {}
    unused: list[str] = []
    for given, value in raw.items():
        key = SECTION_ALIASES.get(given, given)
        # `output` is this tool's result file, or DLIO's output section (a mapping).
        if key not in DLIO_SECTIONS or (key == "output" and not isinstance(value, Mapping)):
            flat[given] = value
            continue
        if not isinstance(value, Mapping):
            if key not in NAMED_BY_A_STRING:
                raise ConfigError(f"{source}: {given}: expected a mapping of DLIO's {key} keys")
            unused.append(given)
            continue
        known = set(DLIO_SECTIONS[key]) | DLIO_ONLY.get(key, frozenset())
        if key == "workflow":
            known |= set(dict(WORKFLOW))
        _refuse_unknown(value, known, given, key, source)
        if key == "workflow" and "phases" not in raw:
            flat["phases"] = _workflow_phases(value, source)
            unused += [f"workflow.{k}" for k in value if k not in dict(WORKFLOW)]
            continue
        for inner, item in value.items():
            target = DLIO_SECTIONS[key].get(inner)
            if key == "output" and inner == "metric" and isinstance(item, Mapping):
                flat.update(_output_metric(item, source))
            elif target is None:
                unused.append(f"{given}.{inner}")
            else:
                flat[target] = item
    return flat, unused


def _output_metric(metric: Mapping[str, Any], source: str) -> dict[str, Any]:
    """DLIO's `output.metric` section: which steps of an epoch AU leaves out."""
    known = {"exclude_start_steps", "exclude_end_steps"}
    _refuse_unknown(metric, known, "output.metric", "output.metric", source)
    return dict(metric)


def _refuse_unknown(
    section: Mapping[str, Any], known: set[str], given: str, name: str, source: str
) -> None:
    """A key of DLIO's section `name` (written `given`) that DLIO does not read either is a
    mistake: refused with the nearest names."""
    for inner in section:
        if inner not in known:
            raise ConfigError(
                f"{source}: {given}.{inner}: not a key of DLIO's {name} section"
                f"{did_you_mean(str(inner), known)}"
            )


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

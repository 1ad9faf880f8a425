"""What no single key can say alone: settings that contradict each other, checked in one place
whenever Settings are made (loaded, built by hand, or changed while a run goes)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.settings.values import Client, Source, aws_bucket_name_problem
from s3dlio_ray._internal.tuning.parts import MIB

if TYPE_CHECKING:
    from s3dlio_ray._internal.settings.schema import Settings


def check(settings: Settings) -> None:
    """What no single key can say alone: settings that contradict each other, in the workload
    and in each of its configurations."""
    _check_one(settings)
    for configuration in settings.configurations:
        try:
            _check_one(settings.derive(configurations=(), **dict(configuration.overrides)))
        except ConfigError as exc:
            raise ConfigError(f"configuration {configuration.name!r}: {exc}") from None


def _check_replay(settings: Settings) -> None:
    replays = Phase.REPLAY in settings.phase_names
    if replays and not settings.replay_logs:
        raise ConfigError(
            "phases: replay issues an op-log again: name it (replay_logs, or "
            "s3dlio-ray replay LOG...)"
        )
    if settings.replay_logs and not replays:
        raise ConfigError("replay_logs: only a replay phase reads them; add one to phases")
    if settings.rewrite and not settings.existing:
        raise ConfigError(
            "rewrite: maps the log's objects onto existing data; it needs --existing (without "
            "it the replay makes its own objects)"
        )
    if replays and settings.client == Client.BOTO3:
        raise ConfigError("phases: replay runs on the engine; set client: engine")


def _check_one(settings: Settings) -> None:
    if settings.output and settings.output.startswith("s3://") and settings.endpoint is None:
        raise ConfigError(
            "output: s3:// needs a store that outlives the run: give --endpoint (the embedded "
            "one ends with the run), or a local path"
        )
    if settings.min_concurrency > settings.max_concurrency:
        raise ConfigError(
            f"min_concurrency ({settings.min_concurrency}) must not exceed max_concurrency "
            f"({settings.max_concurrency}): lower one or raise the other (a running run's "
            "control call can change both at once)"
        )
    if settings.ca_bundle is not None and not Path(settings.ca_bundle).is_file():
        raise ConfigError(
            f"ca_bundle: {settings.ca_bundle} is not a readable file (a PEM of CA certificates)"
        )
    _check_controller(settings)
    for index, entry in enumerate(settings.phases):
        phase = settings.for_phase(index)
        if entry.phase == Phase.MIXED and phase.duration_s is None:
            raise ConfigError("phases: mixed runs for a time: set duration_s (--duration SECONDS)")
        if phase.source == Source.EXISTING:
            _check_existing(entry.phase, phase)
        if entry.phase == Phase.LIST and phase.source == Source.EXISTING and phase.manifest:
            raise ConfigError("phases: list with a manifest has nothing to list; leave it out")
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
    _check_replay(settings)
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
    endpoints = [Endpoint.parse(url) for url in settings.endpoint or ()]
    aws = any(endpoint.is_aws for endpoint in endpoints)
    plain = any(endpoint.is_aws and not endpoint.tls for endpoint in endpoints)
    if plain and not settings.allow_http:
        raise ConfigError(
            "endpoint: plain http:// to AWS sends every object unencrypted: use https://, or "
            "set allow_http: true"
        )
    if aws and settings.http2:
        raise ConfigError("http2: AWS S3 endpoints do not speak HTTP/2; turn http2 off")
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
            "cp: give the endpoint (--endpoint URL, or AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL): a "
            "copy into an embedded endpoint would vanish with it"
        )
    if settings.client == Client.BOTO3:
        raise ConfigError("cp: the boto3 baseline does not copy files; set client: engine")
    if settings.sync and not settings.clobber:
        raise ConfigError(
            "sync overwrites what differs, no_clobber skips whatever is there: choose one"
        )


def _check_controller(settings: Settings) -> None:
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

"""Every setting, declared once: a field of `Settings` with its parser, help text, group and
environment variables (`setting()`). The command line's flags, the key checks and the error
messages all come from those declarations.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field, fields
from typing import Any

from s3dlio_ray._internal.model.dataset import sample_sizes
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import DEFAULT_PREFIX
from s3dlio_ray._internal.model.open_loop import Arrival
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.settings.rules import check
from s3dlio_ray._internal.settings.values import (
    CONFIGURATION_KEYS,
    GROUPS,
    PHASE_OPTIONS,
    BucketRemoval,
    Client,
    Configuration,
    Executor,
    PhaseEntry,
    SecretValue,
    Shuffle,
    Source,
    choice,
    did_you_mean,
    float_range,
    int_range,
    one_of,
    optional,
    parse_arrival,
    parse_bind_addresses,
    parse_bool,
    parse_bucket,
    parse_byte_count,
    parse_concurrency,
    parse_copy_location,
    parse_endpoint,
    parse_endpoints,
    parse_int,
    parse_metrics_port,
    parse_mix,
    parse_model_size,
    parse_object_sizes,
    parse_op_log,
    parse_output,
    parse_patterns,
    parse_rate_limit,
    parse_repeat,
    parse_run_id,
    parse_sample_size,
    parse_str,
    parse_units,
    plain,
)
from s3dlio_ray._internal.tuning.endpoints import EndpointPolicy
from s3dlio_ray._internal.tuning.pacing import RateLimit
from s3dlio_ray._internal.tuning.parts import (
    DEFAULT_FAST_PATH_MAX,
    MAX_PART_SIZE,
    MIB,
    MIN_PART_SIZE,
)
from s3dlio_ray._internal.tuning.profiles import PROFILES


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
            parsed.append((key, PARSERS[key](raw)))
        except ValueError as exc:
            raise ValueError(f"phase {phase}: {key}: {exc}") from None
    return PhaseEntry(phase, tuple(parsed))


def _phases(value: Any) -> tuple[PhaseEntry, ...]:
    items = value.split(",") if isinstance(value, str) else value
    if not isinstance(items, list | tuple) or not items:
        raise ValueError(f"expected a list of phases from {', '.join(Phase)}")
    return tuple(_phase_entry(item) for item in items)


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
                overrides.append((key, PARSERS[key](raw)))
            except ValueError as exc:
                raise ValueError(f"configuration {name!r}: {key}: {exc}") from None
        configurations.append(Configuration(name, tuple(overrides)))
    return tuple(configurations)


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


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything one run needs to know. Secrets are never part of it.

    Made by hand (`Settings(objects=20, object_size="1MiB")`, the workload file's key names) or
    loaded, each value is read by its setting's parser and the whole checked against the rules,
    so both fail with the same one line (ConfigError).
    """

    # workload
    name: str = setting("quick", parse_str, "workload", "workload name (names result files)")
    objects: int = setting(100, int_range(1, 10**12), "workload", "number of objects")
    object_size: ObjectSizes = setting(
        DEFAULT_OBJECT_SIZE,
        parse_object_sizes,
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
        30.0, float_range(0, 86_400), "workload", "how long a sleep phase pauses"
    )
    duration_s: float | None = setting(
        None,
        optional(float_range(0.1, 30 * 86_400)),
        "workload",
        "run each PUT/GET/mixed phase for this many seconds (a mixed run's prefill PUT still "
        "writes its keys once)",
    )
    autoterm: bool = setting(
        False,
        parse_bool,
        "workload",
        "end each phase once its throughput is steady (see --autoterm-window/-pct)",
    )
    autoterm_window_s: float = setting(
        10.0,
        float_range(2, 86_400),
        "workload",
        "autoterm: the window over which throughput must be steady (default 10)",
    )
    autoterm_pct: float = setting(
        7.5, float_range(0.1, 100), "workload", "autoterm: how steady, in percent (default 7.5)"
    )
    rate_limit: RateLimit | None = setting(
        None,
        optional(parse_rate_limit),
        "workload",
        "cap for the whole cluster: 500 ops/s, 1.5 GB/s, 200 MiB/s",
    )
    mix: tuple[tuple[str, float], ...] = setting(
        DEFAULT_MIX,
        parse_mix,
        "workload",
        "mixed phase: weight of each operation (get, put, stat, delete)",
    )
    arrival: Arrival | None = setting(
        None,
        optional(parse_arrival),
        "workload",
        "open loop: operations issued at an offered load, {constant: N} or {poisson: N} a "
        "second over the cluster (poisson:N on the command line), not as earlier ones end",
    )
    source: Source = setting(
        Source.GENERATED,
        one_of(Source),
        "workload",
        "what get, stat, delete, list and mixed reads use: generated (this run's keys) or "
        "existing (the objects under prefix in bucket, or a manifest's)",
    )
    manifest: str | None = setting(
        None,
        optional(parse_str),
        "workload",
        "with source: existing, a file of keys (one per line, optionally KEY<TAB>SIZE) read "
        "instead of listing",
    )
    epochs: int = setting(1, int_range(1, 1_000_000), "workload", "passes a get or stat makes")
    allow_delete_existing: bool = setting(
        False,
        parse_bool,
        "workload",
        "let a delete phase with source: existing remove objects this tool did not write",
    )
    page_size: int = setting(1000, int_range(1, 1000), "workload", "keys per LIST page")
    model_size: int = setting(
        1024**3,
        parse_model_size,
        "workload",
        "checkpoint phase: bytes of the model every checkpoint writes, shared by the actors",
    )
    delete_batch: int = setting(
        1000, int_range(1, 1000), "workload", "keys per DeleteObjects request"
    )
    # training (DLIO's names; its sections dataset/reader/train/checkpoint/metric read as-is)
    num_files_train: int = setting(
        64, int_range(1, 10**9), "training", "dataset: files of samples the datagen writes"
    )
    num_samples_per_file: int = setting(
        1, int_range(1, 10**6), "training", "dataset: samples per file (1: a file is a sample)"
    )
    record_length_bytes: int = setting(
        128 * 1024, parse_sample_size, "training", "dataset: mean bytes per sample"
    )
    record_length_bytes_stdev: int = setting(
        0,
        parse_byte_count,
        "training",
        "dataset: standard deviation of the sample size (sizes kept within 3 deviations)",
    )
    batch_size: int = setting(1, int_range(1, 10**6), "training", "reader: samples per step")
    read_threads: int = setting(
        4, int_range(1, 1024), "training", "reader: samples each accelerator reads at once"
    )
    prefetch_size: int = setting(
        2, int_range(0, 1024), "training", "reader: batches read ahead of the step computing"
    )
    file_shuffle: Shuffle = setting(
        Shuffle.OFF, one_of(Shuffle), "training", "reader: file order per epoch: off, seed, random"
    )
    sample_shuffle: Shuffle = setting(
        Shuffle.OFF,
        one_of(Shuffle),
        "training",
        "reader: sample order per epoch, across files: off, seed, random",
    )
    computation_time: float = setting(
        0.0, float_range(0, 3600), "training", "train: seconds of compute per step (a sleep)"
    )
    accelerators_per_node: int = setting(
        1, int_range(1, 4096), "training", "train: simulated accelerators per node"
    )
    au_threshold: float | None = setting(
        None,
        optional(float_range(0, 1)),
        "training",
        "metric.au: the accelerator utilization a train phase must reach to pass (0.9: 90 percent)",
    )
    exclude_start_steps: int = setting(
        1,
        int_range(0, 10**6),
        "training",
        "metric: steps at the start of each epoch AU leaves out, as DLIO does (default 1)",
    )
    exclude_end_steps: int = setting(
        0,
        int_range(0, 10**6),
        "training",
        "metric: steps at the end of each epoch AU leaves out (default 0)",
    )
    find_max_accelerators: bool = setting(
        False,
        parse_bool,
        "training",
        "search the most accelerators_per_node whose AU holds au_threshold (one-epoch tries)",
    )
    memory_budget_mb: int | None = setting(
        None,
        optional(int_range(1, 10**7)),
        "training",
        "train: MiB per actor for samples in flight and prefetched (default: no cap)",
    )
    verify: bool = setting(True, parse_bool, "workload", "check every byte read back")
    seed: int | None = setting(None, optional(parse_int), "workload", "seed for object content")
    run_id: str | None = setting(
        None,
        optional(parse_run_id),
        "workload",
        "run id (names the key prefix): letters, digits and '-', at most 48",
    )
    prefix: str = setting(DEFAULT_PREFIX, parse_str, "workload", "key prefix above the run id")
    configurations: tuple[Configuration, ...] = setting(
        (),
        _configurations,
        "workload",
        "configurations run in turn on the same keys: [{name, client, concurrency, ...}]",
    )
    client: Client = setting(
        Client.ENGINE, one_of(Client), "workload", "engine (this project) or boto3 (the baseline)"
    )
    # copy (s3dlio-ray cp: phases upload or download)
    copy_from: str | None = setting(
        None,
        optional(parse_copy_location),
        "copy",
        "what an upload or download phase copies: a local file or folder, or s3://BUCKET/PREFIX",
    )
    copy_to: str | None = setting(
        None,
        optional(parse_copy_location),
        "copy",
        "where it copies to: s3://BUCKET/PREFIX, or a local path ({node}: each node's name)",
    )
    recursive: bool = setting(
        False, parse_bool, "copy", "copy a whole folder, or every object under the prefix"
    )
    include: tuple[str, ...] = setting(
        (),
        parse_patterns,
        "copy",
        "copy what matches this pattern (of the path below the source) even if excluded",
        repeat=True,
    )
    exclude: tuple[str, ...] = setting(
        (),
        parse_patterns,
        "copy",
        "leave out what matches this pattern (*.tmp, logs/*)",
        repeat=True,
    )
    per_node: bool = setting(
        False,
        parse_bool,
        "copy",
        "download: every node gets the whole set on its own local path (a training cache)",
    )
    sync: bool = setting(
        False,
        parse_bool,
        "copy",
        "skip what is already at the destination with the same size and checksum (a resume)",
    )
    clobber: bool = setting(
        True, parse_bool, "copy", "overwrite what is at the destination (--no-clobber: skip it)"
    )
    checksum_headers: bool = setting(
        True,
        parse_bool,
        "copy",
        "send each object's CRC32 (per part) for the store to check; the manifest is kept anyway",
    )
    # replay (s3dlio-ray replay LOG...)
    replay_logs: tuple[str, ...] = setting(
        (),
        parse_patterns,
        "replay",
        "the op-logs a replay phase issues again: this tool's, warp's or s3dlio's",
        repeat=True,
    )
    speed: float = setting(
        1.0,
        float_range(0.001, 1000),
        "replay",
        "replay at this factor of the log's pace (2: twice as fast)",
    )
    existing: bool = setting(
        False,
        parse_bool,
        "replay",
        "replay on the objects the log names where they are (read only; missing ones reported), "
        "not on objects the run creates",
    )
    rewrite: tuple[str, ...] = setting(
        (),
        parse_patterns,
        "replay",
        "with --existing, read the log's BUCKET/KEY starting OLD at NEW...: OLD=NEW",
        repeat=True,
    )
    # tuning
    concurrency: int | None = setting(
        None,
        optional(parse_concurrency),
        "tuning",
        "auto or a fixed number of requests in flight",
        env=("S3DLIO_CONCURRENCY",),
    )
    target_gbps: float | None = setting(
        None,
        optional(float_range(0.001, 10_000)),
        "tuning",
        "each actor's target throughput (GB/s): it starts concurrency from it, climbs toward it "
        "and keeps to it",
        env=("S3DLIO_TARGET_GBPS",),
    )
    controller: str | None = setting(
        None,
        optional(choice("actor", "cluster")),
        "tuning",
        "actor (each actor adapts alone) or cluster (the driver steers all actors as one); "
        "cluster when cluster_target_gbps is set, else actor",
        env=("S3DLIO_CONTROLLER",),
    )
    cluster_target_gbps: float | None = setting(
        None,
        optional(float_range(0.001, 1_000_000)),
        "tuning",
        "target throughput of the whole cluster (GB/s), steered by the driver",
        env=("S3DLIO_CLUSTER_TARGET_GBPS",),
    )
    min_concurrency: int = setting(8, int_range(1, 4096), "tuning", "lowest concurrency (auto)")
    max_concurrency: int = setting(256, int_range(1, 4096), "tuning", "highest concurrency (auto)")
    profile: str = setting(
        "auto", choice("auto", *PROFILES), "tuning", "auto, aws or high-performance"
    )
    part_size_mb: int = setting(
        10,
        int_range(MIN_PART_SIZE // MIB, MAX_PART_SIZE // MIB),
        "tuning",
        "multipart part size in MiB (5..5120)",
        env=("S3DLIO_PART_SIZE_MB",),
    )
    adapt_interval_s: float = setting(
        0.5, float_range(0.05, 60), "tuning", "how often the controller looks at throughput"
    )
    # transport
    endpoint: tuple[str, ...] | None = setting(
        None,
        optional(parse_endpoints),
        "transport",
        "S3 endpoint URL; repeat it (or list them) for a cluster's gateways, host{1...8} "
        "expands (default: AWS_ENDPOINT_URL, else an embedded moto server)",
        env=("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL"),
        repeat=True,
    )
    endpoint_policy: EndpointPolicy = setting(
        EndpointPolicy.ROUND_ROBIN,
        one_of(EndpointPolicy),
        "transport",
        "which endpoint each request goes to: round-robin or least-busy",
    )
    resolve_host: bool = setting(
        False,
        parse_bool,
        "transport",
        "an endpoint whose host name resolves to several addresses becomes one per address",
    )
    bind_addresses: tuple[str, ...] = setting(
        (),
        parse_bind_addresses,
        "transport",
        "local addresses or interface names; a node's actors spread over them (one per NIC)",
        repeat=True,
    )
    measure_floors: bool = setting(
        True,
        parse_bool,
        "transport",
        "measure each node's floors once (SHA-256, the TLS suite's cipher, a loopback request; "
        "under a second, cached per node and version) to set beside the client's cost",
        env=("S3DLIO_MEASURE_FLOORS",),
    )
    nic_gbps: float | None = setting(
        None,
        optional(float_range(0.001, 100_000)),
        "transport",
        "the speed of the NICs the actors use, in Gbit/s as NICs are rated (25 for 25GbE): "
        "for the limit verdicts where the kernel does not know it (virtual NICs) or a link is "
        "shaped below it",
        env=("S3DLIO_NIC_GBPS",),
    )
    bucket: str | None = setting(
        None,
        optional(parse_bucket),
        "transport",
        "bucket to use (default: a new bucket, removed at the end)",
    )
    remove_bucket: BucketRemoval = setting(
        BucketRemoval.CREATED,
        one_of(BucketRemoval),
        "transport",
        "remove the bucket at cleanup: created (if this run made it), always or never",
    )
    region: str | None = setting(None, optional(parse_str), "transport", "signing region")
    aws_profile: str | None = setting(
        None, optional(parse_str), "transport", "AWS profile for credentials"
    )
    ca_bundle: str | None = setting(
        None,
        optional(parse_str),
        "transport",
        "CA certificates (PEM) for https:// endpoints",
        env=("AWS_CA_BUNDLE",),
    )
    insecure: bool = setting(
        False,
        parse_bool,
        "transport",
        "do not verify the endpoint's TLS certificate (a lab endpoint with a self-signed one)",
    )
    allow_http: bool = setting(
        False,
        parse_bool,
        "transport",
        "allow plain http:// to an AWS endpoint (bodies would cross the network unencrypted)",
    )
    http2: bool = setting(
        False,
        parse_bool,
        "transport",
        "use HTTP/2 (non-AWS endpoints only)",
        env=("S3DLIO_ENABLE_HTTP2",),
    )
    fast_path: bool = setting(
        True,
        parse_bool,
        "transport",
        "send small requests from the connections' own callbacks, no task each (HTTP/1.1; "
        "off: every request the general way, to compare)",
        env=("S3DLIO_FAST_PATH",),
    )
    fast_path_max: int = setting(
        DEFAULT_FAST_PATH_MAX,
        parse_byte_count,
        "transport",
        "largest object the fast path sends (default 1MiB; larger ones, and multipart, go the "
        "general way)",
        env=("S3DLIO_FAST_PATH_MAX",),
    )
    io_uring: bool = setting(
        False,
        parse_bool,
        "transport",
        "accepted for compatibility; has no effect",
        env=("S3DLIO_ENABLE_IO_URING",),
    )
    connect_timeout_s: float = setting(
        10.0, float_range(0.1, 600), "transport", "connect timeout in seconds"
    )
    timeout_s: float = setting(30.0, float_range(0.1, 3600), "transport", "idle timeout in seconds")
    silence_s: float = setting(
        30.0,
        float_range(0.1, 3600),
        "transport",
        "give up on an endpoint from which no answer came for this long, retries included",
    )
    max_attempts: int = setting(5, int_range(1, 20), "transport", "attempts per request")
    # cluster
    executor: Executor = setting(
        Executor.AUTO,
        one_of(Executor),
        "cluster",
        "auto (the default: a small job with no Ray cluster running stays in this process, "
        "anything else goes to Ray), ray (actors on every node) or local (one process, no Ray)",
    )
    ray_address: str | None = setting(
        None,
        optional(parse_str),
        "cluster",
        "Ray cluster to join (default: RAY_ADDRESS, a running one, or a new local one)",
    )
    actors_per_node: int | None = setting(
        None,
        optional(int_range(1, 1024)),
        "cluster",
        "transfer actors per node (default: the node's free CPUs)",
    )
    # metrics
    metrics_host: str = setting(
        "127.0.0.1",
        parse_str,
        "metrics",
        "address /metrics binds (default 127.0.0.1)",
        env=("S3DLIO_METRICS_HOST",),
    )
    metrics_port: int | None = setting(
        9477,
        optional(parse_metrics_port),
        "metrics",
        "port of /metrics (default 9477; 0: any free port; off: none)",
        env=("S3DLIO_METRICS_PORT",),
    )
    metrics_scrape_interval_s: float = setting(
        15.0, float_range(0.1, 3600), "metrics", "the scraping Prometheus's interval"
    )
    metrics_linger_s: float | None = setting(
        None,
        optional(float_range(0, 3600)),
        "metrics",
        "how long final metrics stay served (default: two scrape intervals)",
    )
    pushgateway_url: str | None = setting(
        None,
        optional(parse_endpoint),
        "metrics",
        "Prometheus Pushgateway to push the final metrics to",
    )
    # output
    output: str | None = setting(
        None,
        optional(parse_output),
        "output",
        "path of the JSON result file, or s3://BUCKET/PREFIX/ to put the result files in the "
        "run's store at the end",
    )
    op_log: str | None = setting(
        None,
        optional(parse_op_log),
        "output",
        "write an op-log per engine: PATH.tsv.zst -> PATH-HOST-PID.tsv.zst",
    )
    repeat: int = setting(
        1,
        parse_repeat,
        "output",
        "run the workload N times (N >= 3): each phase's mean with its 95% interval, and a "
        "repeat set `compare` reads",
    )
    units: str = setting(
        "GB/s",
        parse_units,
        "output",
        "rates in summaries: GB/s, MB/s (decimal) or GiB/s, MiB/s (binary); result files "
        "keep bytes and GB/s",
    )

    def __post_init__(self) -> None:
        for declared in fields(self):
            value = getattr(self, declared.name)
            if value is declared.default:
                continue
            parsed = read_value(declared.name, value)
            if parsed != value or type(parsed) is not type(value):
                object.__setattr__(self, declared.name, parsed)
        check(self)

    def __repr__(self) -> str:
        given = ", ".join(
            f"{declared.name}={plain(getattr(self, declared.name))!r}"
            for declared in fields(self)
            if getattr(self, declared.name) != declared.default
        )
        return f"Settings({given})"

    def derive(self, **checked: Any) -> Settings:
        """These settings with values that are already checked in their own place (a phase's
        options, a configuration's, one try of a search), not checked again as a whole: a
        phase's `source: existing` applies to that phase, not to every phase of the derived
        settings."""
        derived = copy.copy(self)
        for key, value in checked.items():
            object.__setattr__(derived, key, value)
        return derived

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
        """How the engines' concurrency is decided (the boto3 baseline's is always fixed)."""
        if self.concurrency is not None or self.client == Client.BOTO3:
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
        return self.derive(**dict(options)) if options else self

    def to_dict(self) -> dict[str, Any]:
        """Plain data in the workload file's own shape, which load_settings reads back."""
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

    def group(self, name: str) -> SettingsGroup:
        """A read-only view of one group's settings (`settings.group("tuning").min_concurrency`),
        the groups the README's configuration table and `run --help` show."""
        return SettingsGroup(self, name)


class SettingsGroup(Mapping[str, Any]):
    """The settings of one group (workload, training, copy, tuning, transport, cluster,
    metrics, output), read-only, by key or attribute; the Settings stay the one record."""

    def __init__(self, settings: Settings, name: str) -> None:
        if name not in GROUPS:
            raise KeyError(f"no settings group {name!r}; groups: {', '.join(GROUPS)}")
        self._settings = settings
        self.name = name
        self._keys = GROUP_KEYS[name]

    def __getitem__(self, key: str) -> Any:
        if key not in self._keys:
            raise KeyError(key)
        return getattr(self._settings, key)

    def __getattr__(self, key: str) -> Any:
        if key.startswith("_") or key not in self._keys:
            raise AttributeError(f"the {self.name} settings have no {key!r}")
        return getattr(self._settings, key)

    def __iter__(self) -> Iterator[str]:
        return iter(self._keys)

    def __len__(self) -> int:
        return len(self._keys)

    def __repr__(self) -> str:
        return f"SettingsGroup({self.name!r}, {dict(self)!r})"


PARSERS: dict[str, Callable[[Any], Any]] = {f.name: f.metadata["parse"] for f in fields(Settings)}


def read_value(key: str, value: Any) -> Any:
    """`value` (as given, or already typed) read by setting `key`'s parser; ConfigError naming
    the key and what it allows."""
    parse = PARSERS.get(key)
    if parse is None:
        raise ConfigError(
            f"unknown key {key!r}{did_you_mean(key, PARSERS)} (every key: s3dlio-ray run --help)"
        )
    try:
        return parse(plain(value))
    except SecretValue as exc:
        raise ConfigError(f"{key}: {exc}") from None
    except ValueError as exc:
        raise ConfigError(f"{key}: {exc} (got {value!r})") from None


GROUP_KEYS: dict[str, tuple[str, ...]] = {
    group: tuple(f.name for f in fields(Settings) if f.metadata["group"] == group)
    for group in GROUPS
}
"""Each group's keys, in declaration order."""

ENVIRONMENT: dict[str, str] = {
    variable: f.name for f in fields(Settings) for variable in f.metadata["env"]
}
"""Variable -> key, strongest first for a key several variables set."""

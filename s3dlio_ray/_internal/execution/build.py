"""What one process builds from the settings: the S3 client, the object store, the engine."""

from __future__ import annotations

from dataclasses import dataclass

from s3dlio_ray._internal.execution.engine import Engine
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.settings.values import Client
from s3dlio_ray._internal.storage.access import Access
from s3dlio_ray._internal.storage.baseline import DEFAULT_CONCURRENCY, Boto3Store
from s3dlio_ray._internal.storage.floors import machine_floors
from s3dlio_ray._internal.storage.machine import HostProbe, local_address_to, nics_of
from s3dlio_ray._internal.storage.network import source_address
from s3dlio_ray._internal.storage.oplog import OpLog
from s3dlio_ray._internal.storage.s3.client import ClientOptions, S3Client
from s3dlio_ray._internal.storage.s3.retry import RetryPolicy
from s3dlio_ray._internal.storage.s3.signing import Signer, resolve_credentials
from s3dlio_ray._internal.storage.store import S3Store
from s3dlio_ray._internal.tuning.cluster import ClusterPolicy
from s3dlio_ray._internal.tuning.profiles import (
    Direction,
    Profile,
    select_profile,
    start_concurrency,
)
from s3dlio_ray._internal.tuning.scheduler import ConcurrencyPolicy, Mode

PHASE_DIRECTION = {
    Phase.PUT: Direction.UPLOAD,
    Phase.CHECKPOINT: Direction.UPLOAD,
    Phase.GET: Direction.DOWNLOAD,
    Phase.RESTORE: Direction.DOWNLOAD,
}


def concurrency_policy(settings: Settings, profile: Profile, phase: Phase) -> ConcurrencyPolicy:
    """The controller's policy for a phase: fixed, target throughput, or auto."""
    lo, hi = settings.min_concurrency, settings.max_concurrency
    common = {"minimum": lo, "maximum": hi, "measure_intervals": 2, "settle_intervals": 1}
    if phase == Phase.TRAIN:
        return ConcurrencyPolicy(Mode.FIXED, train_ceiling(settings), minimum=1, maximum=4096)
    if settings.concurrency is not None:
        return ConcurrencyPolicy(Mode.FIXED, settings.concurrency, **common)
    if settings.cluster_controlled:
        return ConcurrencyPolicy(Mode.CLUSTER, lo, minimum=1, maximum=hi)
    if settings.target_gbps:
        target = settings.target_gbps * 1e9
        direction = PHASE_DIRECTION.get(phase, Direction.DOWNLOAD)
        start = start_concurrency(profile, direction, target, lo, hi)
        return ConcurrencyPolicy(Mode.TARGET, start, target_bytes_per_s=target, **common)
    return ConcurrencyPolicy(Mode.AUTO, lo, **common)


def cluster_policy(settings: Settings, phase: Phase) -> ClusterPolicy | None:
    """The driver's controller for a phase, when it steers the cluster (never a train phase:
    the accelerators pace it)."""
    if not settings.cluster_controlled or phase == Phase.TRAIN:
        return None
    target = settings.cluster_target_gbps
    return ClusterPolicy(
        start_each=settings.min_concurrency,
        maximum_each=settings.max_concurrency,
        target_bytes_per_s=target * 1e9 if target else None,
    )


def train_ceiling(settings: Settings) -> int:
    """Requests in flight a train phase allows an engine: the accelerators' read threads pace
    it; the memory budget caps it at as many of the largest samples as it holds."""
    ceiling = settings.concurrency or settings.max_concurrency
    budget = settings.memory_budget
    return ceiling if budget is None else max(1, min(ceiling, budget // settings.largest_sample))


@dataclass(frozen=True)
class Seat:
    """Where an engine sits: its rank among the run's engines (where its endpoint rotation
    starts) and its index among its node's (which of bind_addresses it leaves from)."""

    rank: int = 0
    on_node: int = 0

    def bind_address(self, settings: Settings) -> str | None:
        names = settings.bind_addresses
        return source_address(names[self.on_node % len(names)]) if names else None


def build_client(settings: Settings, access: Access, seat: Seat = Seat()) -> S3Client:
    bind_address = seat.bind_address(settings)
    signer = Signer(resolve_credentials(settings.aws_profile, access.credentials), access.region)
    options = ClientOptions(
        endpoints=access.endpoints,
        endpoint_policy=settings.endpoint_policy,
        first_endpoint=seat.rank,
        bind_address=bind_address,
        region=access.region,
        http2=settings.http2,
        max_connections=max(settings.max_concurrency, settings.concurrency or 0),
        connect_timeout_s=settings.connect_timeout_s,
        timeout_s=settings.timeout_s,
        silence_s=settings.silence_s,
        retry=RetryPolicy(max_attempts=settings.max_attempts),
        ca_bundle=settings.ca_bundle,
        insecure=settings.insecure,
    )
    return S3Client(options, signer)


def host_probe(settings: Settings, access: Access, bind_address: str | None) -> HostProbe:
    """The probe of this node's CPU and of the NICs the engine's connections leave from: the
    source address's, else those the kernel routes each endpoint through."""
    if bind_address:
        addresses = [bind_address]
    else:
        routes = (local_address_to(e.connect_host, e.port) for e in access.endpoints)
        addresses = [address for address in routes if address]
    floors = machine_floors() if settings.measure_floors else None
    return HostProbe(nics_of(addresses), settings.nic_gbps, floors)


def build_engine(settings: Settings, access: Access, seat: Seat = Seat()) -> Engine:
    """This project's engine, or with `client: boto3` the same loop over the boto3 baseline
    at a fixed concurrency (one endpoint, no source address: the settings refuse more)."""
    endpoint = access.first
    if settings.client == Client.BOTO3:
        threads = settings.concurrency or DEFAULT_CONCURRENCY
        url = endpoint.label if endpoint else None
        store = Boto3Store(url, access.region, access.credentials, threads)
        fixed = ConcurrencyPolicy(Mode.FIXED, threads, minimum=threads, maximum=threads)
        probe = host_probe(settings, access, None)
        return Engine(store, lambda phase, overrides: fixed, settings.adapt_interval_s, probe)
    profile = select_profile(settings.profile, endpoint)
    client = build_client(settings, access, seat)
    op_log = OpLog(settings.op_log) if settings.op_log else None
    return Engine(
        S3Store(
            client,
            settings.part_size,
            op_log,
            settings.memory_budget,
            settings.fast_path_max if settings.fast_path else None,
        ),
        lambda phase, overrides: concurrency_policy(overrides.onto(settings), profile, phase),
        settings.adapt_interval_s,
        host_probe(settings, access, client.options.bind_address),
    )

"""The lab's shape, decided before anything is made: which namespaces, which addresses, which
rates. Pure, so every address and name can be checked without root."""

from __future__ import annotations

import functools
import ipaddress
import itertools
import re
from dataclasses import dataclass
from enum import StrEnum

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.units import parse_size

DEFAULT_SUBNET = "10.250.0.0/24"
GATEWAY_PORT = 80
# A gateway that adds delay serves here inside its own namespace, behind the delaying relay.
INNER_PORT = 8080
STORE_PORT = 5000
RAY_PORT = 6379
PROMETHEUS_PORT = 9090

# tc's rate units: bits (bit, kbit, ...) and bytes (bps, kbps, ...), decimal as tc reads them.
_RATE = re.compile(r"^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit|tbit|bps|kbps|mbps|gbps|tbps)$")
_SCALE = {"": 1, "k": 1e3, "m": 1e6, "g": 1e9, "t": 1e12}
_NAME = re.compile(r"^[a-z][a-z0-9]{0,7}$")


class StoreKind(StrEnum):
    RGW = "rgw"
    MOTO = "moto"
    NULL = "null"


def parse_rate(text: str) -> float:
    """A rate as `tc` writes it (`100mbit`, `1gbit`, `12mbps`), in bits per second."""
    found = _RATE.match(text.strip().lower())
    if not found:
        raise ConfigError(
            f"rate {text!r}: write it as tc does, a number and a unit: 100mbit, 1gbit, 500kbit "
            "(or bytes: 12mbps)"
        )
    number, unit = float(found.group(1)), found.group(2)
    bits = unit.endswith("bit")
    scale = _SCALE[unit[0] if unit[0] in "kmgt" else ""]
    value = number * scale * (1 if bits else 8)
    if value < 1e5:
        raise ConfigError(f"rate {text!r} is below 100kbit: too slow for a lab link")
    return value


def tbf_burst_bytes(bits_per_s: float) -> int:
    """A token bucket deep enough for the kernel's timer (about 4 ms of the rate) and for one
    segmentation-offloaded packet (64 KiB), so the link reaches its rate."""
    return max(256 * 1024, int(bits_per_s / 8 * 0.004))


@dataclass(frozen=True)
class Nic:
    """One interface of a lab namespace: its name there, the switch side's, its address."""

    namespace: str
    device: str
    peer: str
    address: str
    rate_bits: float | None


@dataclass(frozen=True)
class Lab:
    """What `lab up` builds. Namespaces: `<prefix>sw` (the bridge), `<prefix>st` (the store's
    core: RADOS or moto), `<prefix>g1..gG` (gateways), `<prefix>h1..hN` (client hosts)."""

    name: str
    hosts: int
    nics: int
    nic_rate: str
    store: StoreKind
    gateways: int
    store_rate: str | None
    delay_ms: float
    subnet: str
    cpus: int
    null_size: str = "4MiB"
    """What the null endpoint serves for any GET (it stores nothing)."""
    host_cpu: float | None = None
    """Cores each host's processes may use (a cgroup CPU quota; None: no quota)."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.name):
            raise ConfigError(
                f"lab name {self.name!r}: 1-8 lowercase letters and digits, starting with a letter"
            )
        limits = (("hosts", self.hosts, 16), ("nics", self.nics, 4), ("gateways", self.gateways, 8))
        for what, value, top in (*limits, ("cpus", self.cpus, 64)):
            if not 1 <= value <= top:
                raise ConfigError(f"--{what} {value}: give 1..{top}")
        if self.host_cpu is not None and not 0.01 <= self.host_cpu <= 64:
            raise ConfigError(f"--host-cpu {self.host_cpu:g}: give 0.01..64 cores")
        if not 0 <= self.delay_ms <= 10_000:
            raise ConfigError(f"--delay-ms {self.delay_ms:g}: give 0..10000")
        parse_rate(self.nic_rate)
        try:
            parse_size(self.null_size)
        except ValueError as error:
            raise ConfigError(f"--null-size {self.null_size}: {error}") from None
        if self.store_rate is not None:
            parse_rate(self.store_rate)
        network = self.network
        if not network.is_private or network.version != 4:
            raise ConfigError(
                f"--subnet {self.subnet}: give a private IPv4 subnet (10.x, 192.168.x)"
            )
        if network.num_addresses - 2 < self.address_count:
            raise ConfigError(
                f"--subnet {self.subnet} has too few addresses for {self.address_count}: "
                "give a larger one"
            )

    @property
    def network(self) -> ipaddress.IPv4Network:
        try:
            network = ipaddress.ip_network(self.subnet, strict=True)
        except ValueError as error:
            raise ConfigError(f"--subnet {self.subnet}: {error}") from None
        assert isinstance(network, ipaddress.IPv4Network)
        return network

    @property
    def prefix(self) -> str:
        return namespace_prefix(self.name)

    @property
    def switch(self) -> str:
        return f"{self.prefix}sw"

    @property
    def core(self) -> str:
        return f"{self.prefix}st"

    def gateway(self, index: int) -> str:
        return f"{self.prefix}g{index + 1}"

    def host(self, index: int) -> str:
        return f"{self.prefix}h{index + 1}"

    @property
    def namespaces(self) -> list[str]:
        return [
            self.switch,
            self.core,
            *self.gateway_namespaces,
            *self.host_namespaces,
        ]

    @property
    def host_namespaces(self) -> list[str]:
        return [self.host(h) for h in range(self.hosts)]

    @property
    def gateway_namespaces(self) -> list[str]:
        return [self.gateway(g) for g in range(self.gateways)]

    @property
    def backends(self) -> bool:
        """Whether gateways reach a store core (RADOS, moto) through a NIC of their own: the
        store's traffic behind a gateway would otherwise share the link it is measured by,
        and its acknowledgements would queue behind that traffic."""
        return self.store is not StoreKind.NULL

    @property
    def address_count(self) -> int:
        return 1 + self.gateways * (2 if self.backends else 1) + self.hosts * self.nics

    @functools.cached_property
    def all_nics(self) -> list[Nic]:
        """Every interface in address order: the store's core (unshaped), the gateways (the
        store rate), the hosts' NICs (the NIC rate), the gateways' backend NICs (unshaped)."""
        addresses = (str(a) for a in itertools.islice(self.network.hosts(), 1, None))
        store_bits = parse_rate(self.store_rate) if self.store_rate else None
        nic_bits = parse_rate(self.nic_rate)
        nics = [Nic(self.core, "eth0", "st", next(addresses), None)]
        nics += [
            Nic(self.gateway(g), "eth0", f"g{g + 1}", next(addresses), store_bits)
            for g in range(self.gateways)
        ]
        nics += [
            Nic(self.host(h), f"eth{k}", f"h{h + 1}e{k}", next(addresses), nic_bits)
            for h in range(self.hosts)
            for k in range(self.nics)
        ]
        if self.backends:
            nics += [
                Nic(self.gateway(g), "eth1", f"g{g + 1}b", next(addresses), None)
                for g in range(self.gateways)
            ]
        return nics

    def address(self, namespace: str, nic: int = 0) -> str:
        return [n for n in self.all_nics if n.namespace == namespace][nic].address

    @property
    def endpoints(self) -> list[str]:
        return [
            f"http://{self.address(self.gateway(g))}:{GATEWAY_PORT}" for g in range(self.gateways)
        ]

    @property
    def ray_address(self) -> str:
        return f"{self.address(self.host(0))}:{RAY_PORT}"


def namespace_prefix(name: str) -> str:
    """What every namespace of lab `name` is called first."""
    return f"s3lab-{name}-"


def overlapping(subnet: str, in_use: list[str]) -> str | None:
    """The first of `in_use` (addresses or networks with a prefix length) that overlaps."""
    network = ipaddress.ip_network(subnet, strict=False)
    for item in in_use:
        try:
            other = ipaddress.ip_interface(item).network
        except ValueError:
            continue
        if other.version == network.version and other.overlaps(network) and other.prefixlen > 0:
            return item
    return None

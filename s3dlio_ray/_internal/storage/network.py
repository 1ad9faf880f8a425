"""The machine's side of the network: endpoint host names to addresses, and the local address
an actor's connections leave from (an IP address, or an interface name resolved on its node)."""

from __future__ import annotations

import ipaddress
import socket

import psutil

from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.errors import ConfigError


def spread_over_addresses(endpoints: tuple[Endpoint, ...]) -> tuple[Endpoint, ...]:
    """Each endpoint whose host name resolves to several addresses, as one endpoint per address
    (in the resolver's order), each still named by its host; names that resolve to one address
    stay as they are."""
    spread: list[Endpoint] = []
    for endpoint in endpoints:
        try:
            infos = socket.getaddrinfo(endpoint.host, endpoint.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise ConfigError(
                f"resolve_host: {endpoint.host} does not resolve ({exc.strerror}); check the "
                "endpoint"
            ) from None
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        if len(addresses) <= 1:
            spread.append(endpoint)
        else:
            spread += [endpoint.at(address) for address in addresses]
    return tuple(dict.fromkeys(spread))


def source_address(name: str) -> str:
    """The local IP address `name` is (checked by binding to it) or that interface `name` has;
    one clear line when this node has no such address or interface."""
    try:
        address = str(ipaddress.ip_address(name))
    except ValueError:
        interfaces = psutil.net_if_addrs()
        if name not in interfaces:
            raise ConfigError(
                f"bind_addresses: this node ({socket.gethostname()}) has no interface {name!r} "
                f"(it has {', '.join(sorted(interfaces))})"
            ) from None
        found = [a.address for a in interfaces[name] if a.family == socket.AF_INET]
        found += [a.address for a in interfaces[name] if a.family == socket.AF_INET6]
        if not found:
            raise ConfigError(f"bind_addresses: interface {name!r} has no IP address") from None
        address = found[0].split("%")[0]
    family = socket.AF_INET6 if ":" in address else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((address, 0))
        except OSError as exc:
            raise ConfigError(
                f"bind_addresses: {address} is not an address of this node "
                f"({socket.gethostname()}): {exc.strerror}"
            ) from None
    return address

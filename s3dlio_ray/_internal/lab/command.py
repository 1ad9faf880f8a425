"""`s3dlio-ray lab up | exec | status | down`: hosts with their own NICs on one Linux machine.

Every host, gateway, the store's core and the switch are network namespaces named
`s3lab-NAME-*`; everything the lab runs runs inside them, and its files live in one folder, so
taking it down is ending the processes in those namespaces, deleting them, and removing the
folder. The machine's own namespace gets no link, address, route or qdisc."""

from __future__ import annotations

import contextlib
import os
import secrets
import shutil
import sys
from pathlib import Path

from s3dlio_ray._internal.lab import cgroups, netns
from s3dlio_ray._internal.lab.netns import answers, wrap
from s3dlio_ray._internal.lab.plan import (
    GATEWAY_PORT,
    RAY_PORT,
    Lab,
    namespace_prefix,
    overlapping,
    parse_rate,
)
from s3dlio_ray._internal.lab.raylets import start_ray
from s3dlio_ray._internal.lab.record import Record, folder, load, others
from s3dlio_ray._internal.lab.stores import start_store
from s3dlio_ray._internal.model.errors import ConfigError

# Links and qdiscs need CAP_NET_ADMIN; a named namespace is a bind mount: CAP_SYS_ADMIN.
CAPABILITIES = {"CAP_NET_ADMIN": 12, "CAP_SYS_ADMIN": 21}


def require_privileges() -> None:
    """Linux, `ip` and `tc`, and root's powers over the network (namespaces, links, qdiscs)."""
    if not sys.platform.startswith("linux"):
        raise ConfigError("lab: needs Linux (network namespaces, veth links, tc)")
    missing = [name for name, bit in CAPABILITIES.items() if not _capable(bit)]
    if missing:
        raise ConfigError(
            f"lab: needs root ({' and '.join(missing)}) to make namespaces, links and qdiscs: "
            "run it with sudo"
        )
    for tool in ("ip", "tc"):
        if shutil.which(tool) is None:
            raise ConfigError(f"lab: needs `{tool}` (Debian: apt-get install iproute2)")


def _capable(bit: int) -> bool:
    """Whether this process holds the capability (root does, unless a container took it)."""
    with contextlib.suppress(OSError):
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> bit & 1)
    return os.geteuid() == 0


def _leftovers(name: str) -> list[str]:
    """Namespaces of lab `name` that exist, recorded or not (by their names)."""
    if not netns.NETNS_DIR.is_dir():
        return []
    prefix = namespace_prefix(name)
    return sorted(p.name for p in netns.NETNS_DIR.iterdir() if p.name.startswith(prefix))


def up(lab: Lab) -> Record:
    """Builds the lab; on any failure removes what it made and raises."""
    require_privileges()
    if load(lab.name) is not None or _leftovers(lab.name):
        raise ConfigError(
            f"lab {lab.name!r} is up already (or left over): `s3dlio-ray lab down"
            f"{_named(lab.name)}` first"
        )
    in_use = netns.addresses_in_use() + [other.lab.subnet for other in others(lab.name)]
    clash = overlapping(lab.subnet, in_use)
    if clash is not None:
        raise ConfigError(
            f"--subnet {lab.subnet} overlaps {clash}, in use on this machine: give another "
            "private subnet"
        )
    record = Record(lab)
    record.save()
    try:
        _build(record)
    except BaseException:
        teardown(lab.name, record.namespaces)
        raise
    record.up = True
    record.save()
    return record


def _build(record: Record) -> None:
    lab = record.lab
    for namespace in lab.namespaces:
        record.made(namespace)
        netns.add_namespace(namespace)
    netns.add_switch(lab)
    if lab.nics > 1:
        for namespace in lab.host_namespaces:
            netns.one_address_per_nic(namespace)
    for nic in lab.all_nics:
        netns.add_nic(lab, nic)
    keys = (f"s3lab{secrets.token_hex(6)}", secrets.token_hex(20))
    start_store(lab, record.folder, keys)
    for namespace in lab.host_namespaces:
        cgroups.make(namespace, lab.host_cpu)
    record.exports = {
        **start_ray(lab, record.folder),
        "AWS_ENDPOINT_URL_S3": ",".join(lab.endpoints),
        "AWS_ACCESS_KEY_ID": keys[0],
        "AWS_SECRET_ACCESS_KEY": keys[1],
        "AWS_REGION": "us-east-1",
        "S3DLIO_NIC_GBPS": f"{parse_rate(lab.nic_rate) / 1e9:g}",
    }


def teardown(name: str, namespaces: list[str]) -> list[str]:
    """Ends every process in the lab's namespaces (recorded, or found by name), deletes them,
    removes its folder; the namespaces there were."""
    present = [n for n in dict.fromkeys([*namespaces, *_leftovers(name)]) if netns.exists(n)]
    netns.end_processes(present)
    cgroups.remove(present)
    for namespace in reversed(present):
        netns.remove_namespace(namespace)
    shutil.rmtree(folder(name), ignore_errors=True)
    return present


def down(name: str) -> str:
    """Removes lab `name`, also one whose `up` died half way; what it did, in one line."""
    require_privileges()
    record = load(name)
    if record is None and not _leftovers(name) and not folder(name).exists():
        return f"no lab {name!r} here"
    removed = teardown(name, record.namespaces if record is not None else [])
    return f"lab {name!r} removed: {len(removed)} namespaces with their links, qdiscs and processes"


def running(name: str) -> Record:
    record = load(name)
    if record is None or not record.up:
        raise ConfigError(f"no lab {name!r} is up: `s3dlio-ray lab up{_named(name)} ...` first")
    return record


def exec_in(name: str, host: int, command: list[str]) -> None:
    """Replaces this process with `command` inside host `host`'s namespace (1 = the head's),
    with the lab's environment."""
    require_privileges()
    record = running(name)
    if not 1 <= host <= record.lab.hosts:
        raise ConfigError(f"--host {host}: this lab has hosts 1..{record.lab.hosts}")
    if not command:
        raise ConfigError("lab exec: give a command after --, e.g. lab exec -- s3dlio-ray run W")
    environment = {**os.environ, **record.exports}
    argv = cgroups.in_host(record.lab.host(host - 1), command)
    os.execvpe(argv[0], argv, environment)


def exports(record: Record) -> str:
    return "".join(f"export {key}={value}\n" for key, value in record.exports.items())


def status(name: str) -> tuple[bool, str]:
    """Whether every part of the lab answers, and the map with what answers."""
    require_privileges()
    record = running(name)
    lab = record.lab
    lines = [describe(lab)]
    healthy = True
    probe = wrap(lab.host(0))
    for url in lab.endpoints:
        ok = answers(url, probe)
        healthy &= ok
        lines.append(f"  {url}: {'answers' if ok else 'does not answer'}")
    for h in range(lab.hosts):
        alive = len(netns.pids(lab.host(h)))
        healthy &= alive > 0
        lines.append(f"  host {h + 1}: {alive} processes (its raylet and workers)")
    return healthy, "\n".join(lines)


def describe(lab: Lab) -> str:
    """The one-screen map: namespaces, NICs, addresses, rates, what serves where."""
    store_rate = lab.store_rate or "unshaped"
    delay = f", +{lab.delay_ms:g} ms at each gateway" if lab.delay_ms else ""
    cpu = f" ({lab.host_cpu:g} cores each)" if lab.host_cpu else ""
    lines = [
        f"lab {lab.name!r}: {lab.hosts} hosts{cpu} x {lab.nics} NIC at {lab.nic_rate} each way, "
        f"{lab.store} behind {lab.gateways} gateway(s) at {store_rate}{delay}; "
        f"subnet {lab.subnet}",
        f"  {'part':<8}{'namespace':<20}{'NIC':<6}{'address':<16}{'rate':<10}serves",
    ]
    for nic in lab.all_nics:
        part = nic.namespace.removeprefix(lab.prefix)
        rate = _rate_text(nic.rate_bits)
        serves = ""
        if nic.namespace == lab.host(0) and nic.device == "eth0":
            serves = f"Ray head :{RAY_PORT}"
        elif nic.namespace in lab.host_namespaces and nic.device == "eth0":
            serves = "raylet"
        elif nic.namespace == lab.core:
            serves = {"rgw": "RADOS (mon, OSD)", "moto": "moto", "null": ""}[lab.store]
        elif nic.namespace in lab.gateway_namespaces and nic.device == "eth1":
            serves = "backend: to the store's core only"
        elif nic.namespace in lab.gateway_namespaces and lab.store == "null":
            serves = f"S3 :{GATEWAY_PORT} (null: {lab.null_size} a GET)"
        elif nic.namespace in lab.gateway_namespaces:
            serves = f"S3 :{GATEWAY_PORT}"
        lines.append(
            f"  {part:<8}{nic.namespace:<20}{nic.device:<6}{nic.address:<16}{rate:<10}{serves}"
        )
    return "\n".join(lines)


def _rate_text(bits: float | None) -> str:
    if bits is None:
        return "unshaped"
    for unit, scale in (("gbit", 1e9), ("mbit", 1e6), ("kbit", 1e3)):
        if bits >= scale:
            return f"{bits / scale:g}{unit}"
    return f"{bits:g}bit"


def _named(name: str) -> str:
    return "" if name == "lab" else f" --name {name}"

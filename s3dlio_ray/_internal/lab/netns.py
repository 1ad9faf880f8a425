"""Network namespaces, veth links, a bridge and token-bucket shaping, through `ip` and `tc`.

Each lab NIC is a veth pair: one end inside its host's namespace, the other on the bridge in
the lab's switch namespace. A token bucket on each end shapes both directions (the inner end's
egress is the host's upload, the switch end's egress its download), so no `ifb` device is
needed and nothing of the lab lives in the machine's own namespace."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Sequence
from pathlib import Path

from s3dlio_ray._internal.lab.plan import Lab, Nic, tbf_burst_bytes
from s3dlio_ray._internal.model.errors import S3DlioRayError

NETNS_DIR = Path("/run/netns")


def ip(*args: str, namespace: str | None = None) -> str:
    command = ["ip", *(["-n", namespace] if namespace else []), *args]
    return _run(command)


def wrap(namespace: str) -> tuple[str, ...]:
    """The command prefix that runs a command inside a lab namespace."""
    return ("ip", "netns", "exec", namespace)


def inside(namespace: str, *command: str) -> str:
    return _run([*wrap(namespace), *command])


def spawn(command: Sequence[str], log: Path) -> subprocess.Popen:
    """A daemon (`wrap(namespace)` first: inside a lab namespace) in its own session, so it
    outlives the command that started it; its output appended to `log`."""
    log.parent.mkdir(parents=True, exist_ok=True)
    with log.open("ab") as out:
        return subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            start_new_session=True,
        )


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    if done.returncode != 0:
        raise S3DlioRayError(f"{' '.join(command)}: {done.stderr.strip() or done.stdout.strip()}")
    return done.stdout


def exists(namespace: str) -> bool:
    return (NETNS_DIR / namespace).exists()


def add_namespace(namespace: str) -> None:
    ip("netns", "add", namespace)
    ip("link", "set", "lo", "up", namespace=namespace)


def add_switch(lab: Lab) -> None:
    ip("link", "add", "br0", "type", "bridge", namespace=lab.switch)
    ip("link", "set", "br0", "up", namespace=lab.switch)


def add_nic(lab: Lab, nic: Nic) -> None:
    """The veth pair, its address, its shaping, and (on a host with several NICs) a routing
    table per NIC so that traffic from an address leaves through that address's NIC."""
    prefix = lab.network.prefixlen
    ip("link", "add", nic.peer, "type", "veth", "peer", "name", nic.device, "netns",
       nic.namespace, namespace=lab.switch)  # fmt: skip
    ip("link", "set", nic.peer, "master", "br0", "up", namespace=lab.switch)
    ip("addr", "add", f"{nic.address}/{prefix}", "dev", nic.device, namespace=nic.namespace)
    ip("link", "set", nic.device, "up", namespace=nic.namespace)
    if nic.rate_bits is not None:
        shape(lab.switch, nic.peer, nic.rate_bits)
        shape(nic.namespace, nic.device, nic.rate_bits)
    if nic.device == "eth1" and nic.namespace in lab.gateway_namespaces:
        # A gateway's backend NIC: the way to the store's core, and only that.
        ip("route", "add", f"{lab.address(lab.core)}/32", "dev", nic.device, "src", nic.address,
           namespace=nic.namespace)  # fmt: skip
    elif lab.nics > 1 and nic.namespace in lab.host_namespaces:
        table = str(100 + int(nic.device.removeprefix("eth")))
        ip("route", "add", str(lab.network), "dev", nic.device, "src", nic.address, "table",
           table, namespace=nic.namespace)  # fmt: skip
        ip("rule", "add", "from", nic.address, "table", table, namespace=nic.namespace)


def one_address_per_nic(namespace: str) -> None:
    """ARP answered only on the NIC that holds the address, as on hosts with several NICs."""
    for key, value in (("arp_ignore", "1"), ("arp_announce", "2"), ("rp_filter", "0")):
        inside(namespace, "sysctl", "-q", "-w", f"net.ipv4.conf.all.{key}={value}")


# The queue a shaped link holds: 200 ms of its rate. This kernel has no fair queueing (fq_codel,
# sfq) to put under the token bucket, and with 50 ms twenty GETs sharing one NIC lost packets
# together: some waited out retransmission timeouts (p99 17-24 s for 4 MiB at 25 MB/s) and the
# link ran at 0.7 of its rate; with 200 ms it ran at 0.93-0.97.
QUEUE = "200ms"


def shape(namespace: str, device: str, bits_per_s: float) -> None:
    ip_tc = ["tc", "-n", namespace, "qdisc", "replace", "dev", device, "root", "tbf"]
    burst = str(tbf_burst_bytes(bits_per_s))
    _run([*ip_tc, "rate", f"{int(bits_per_s)}bit", "burst", burst, "latency", QUEUE])


def cut(namespace: str, device: str, up: bool = False) -> None:
    """A link down (its host loses the network) or up again."""
    ip("link", "set", device, "up" if up else "down", namespace=namespace)


def pids(namespace: str) -> list[int]:
    """Every process whose network namespace is this one."""
    if not exists(namespace):
        return []
    found = ip("netns", "pids", namespace).split()
    return [int(p) for p in found if p.isdigit() and int(p) != os.getpid()]


def end_processes(namespaces: list[str], grace_s: float = 5.0) -> None:
    """SIGTERM to every process in these namespaces, SIGKILL to those left after the grace."""
    for sig in (signal.SIGTERM, signal.SIGKILL):
        left = [p for n in namespaces for p in pids(n)]
        for pid in left:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, sig)
        deadline = time.monotonic() + grace_s
        while left and time.monotonic() < deadline:
            time.sleep(0.1)
            left = [p for n in namespaces for p in pids(n)]
        if not left:
            return
    raise S3DlioRayError(f"processes in the lab's namespaces survived SIGKILL: {left}")


def remove_namespace(namespace: str) -> None:
    if exists(namespace):
        ip("netns", "delete", namespace)


def addresses_in_use() -> list[str]:
    """This machine's own addresses and routes (its namespace), to keep the lab's subnet apart."""
    found = []
    for entry in json.loads(ip("-j", "addr", "show") or "[]"):
        found += [f"{a['local']}/{a['prefixlen']}" for a in entry.get("addr_info", [])]
    for route in json.loads(ip("-j", "route", "show") or "[]"):
        if route.get("dst") not in (None, "default"):
            found.append(route["dst"])
    return found


# Any HTTP answer (an S3 error included) means the server is up.
_PROBE = """import sys, urllib.error, urllib.request
try:
    urllib.request.urlopen(sys.argv[1], timeout=2).read()
except urllib.error.HTTPError:
    pass
"""


def answers(url: str, prefix: Sequence[str] = ()) -> bool:
    """Whether an HTTP server answers at `url`, asked through `prefix` (`wrap(namespace)`: from
    inside a lab namespace)."""
    command = [*prefix, sys.executable, "-c", _PROBE, url]
    return subprocess.run(command, capture_output=True, timeout=10).returncode == 0

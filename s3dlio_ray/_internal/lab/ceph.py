"""A Ceph cluster with RGW gateways, from Debian's Ceph 16.2 packages: the lab's production
store, and the suite's.

Ceph 16.2 has no single-process backend for its gateway, so this starts the smallest cluster
one can serve: one monitor, one OSD keeping its data in memory (`memstore`, capped), no
manager, the gateway's pools made before a gateway starts, then one `radosgw` per gateway
(beast frontend, each its own address), all in front of the one RADOS cluster. Every daemon
runs in the foreground under one folder (data, sockets, logs), in its own session so it
outlives the command that started it; `wrap` (`ip netns exec NS`) puts a daemon in a lab
namespace."""

from __future__ import annotations

import contextlib
import functools
import shutil
import subprocess
import time
import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from s3dlio_ray._internal.lab.netns import answers, spawn
from s3dlio_ray._internal.model.errors import S3DlioRayError

POOLS = (
    ".rgw.root",
    "default.rgw.control",
    "default.rgw.meta",
    "default.rgw.log",
    "default.rgw.buckets.index",
    "default.rgw.buckets.data",
    "default.rgw.buckets.non-ec",
)
PACKAGES = "apt-get install ceph-mon ceph-osd radosgw ceph-common"


def installed() -> bool:
    commands = ("ceph-mon", "ceph-osd", "radosgw", "ceph", "radosgw-admin", "ceph-authtool")
    return all(shutil.which(name) for name in commands)


CONF = """[global]
fsid = {fsid}
mon host = [v1:{address}:{mon_port}]
mon initial members = a
ms bind msgr2 = false
ms bind ipv6 = false
public addr = {address}
cluster addr = {address}
auth cluster required = none
auth service required = none
auth client required = none
run dir = {root}/run
admin socket = {root}/run/$name.asok
log file = {root}/log/$name.log
pid file = {root}/run/$name.pid
keyring = {root}/keyring
osd pool default size = 1
osd pool default min size = 1
osd pool default pg num = 8
osd pool default pgp num = 8
mon allow pool size one = true
mon allow pool delete = true
paxos propose interval = 0.1
osd crush chooseleaf type = 0

[mon]
mon data = {root}/mon/$cluster-$id

[osd]
osd data = {root}/osd/$cluster-$id
osd objectstore = memstore
memstore device bytes = {memstore_bytes}
"""

# Without tcp_nodelay each GET and LIST stalls about 48 ms; the garbage collector's defaults
# keep deleted data (in RAM, with memstore) for two hours.
GATEWAY = """
[client.{name}]
rgw frontends = beast endpoint={endpoint} tcp_nodelay=1
rgw data = {root}/{name}
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw gc processor max time = 30
"""


@dataclass(frozen=True)
class Gateway:
    """One radosgw: its name in the cluster, where it listens, what it runs inside."""

    name: str
    endpoint: str
    wrap: tuple[str, ...] = ()
    # Where clients reach it, when that is not where it listens (a relay in front).
    url: str = ""

    @property
    def address(self) -> str:
        return self.url or f"http://{self.endpoint}"


@dataclass
class CephCluster:
    """A running cluster: start() makes and starts it; stop() ends what it started."""

    root: Path
    address: str = "127.0.0.1"
    mon_port: int = 6789
    wrap: tuple[str, ...] = ()
    processes: list[subprocess.Popen] = field(default_factory=list)
    names: dict[int, str] = field(default_factory=dict)

    @property
    def conf(self) -> str:
        return str(self.root / "ceph.conf")

    def ceph(self, *args: str, timeout: float = 30) -> str:
        """A `ceph` command against this cluster, its output; tried again for a while, since a
        monitor that just started may refuse a command before it knows its own map (EPERM)."""
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                [*self.wrap, "ceph", "-c", self.conf, "--connect-timeout", "5", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if done.returncode == 0:
                return done.stdout
            if time.monotonic() > deadline:
                raise S3DlioRayError(f"ceph {' '.join(args)}: {done.stderr.strip()[-500:]}")
            time.sleep(0.3)

    def _daemon(self, wrap: Sequence[str], *command: str) -> None:
        log = self.root / "log" / f"{command[0]}-{len(self.processes)}.out"
        process = spawn([*wrap, *command, "-f", "-c", self.conf], log)
        self.processes.append(process)
        self.names[process.pid] = command[0]

    def _run(self, *command: str) -> None:
        done = subprocess.run([*self.wrap, *command], capture_output=True, text=True, timeout=60)
        if done.returncode != 0:
            raise S3DlioRayError(f"{' '.join(command)}: {done.stdout[-300:]} {done.stderr[-500:]}")

    def start(
        self,
        gateways: Sequence[Gateway],
        users: Sequence[tuple[str, str]],
        memstore_bytes: int = 2 << 30,
        timeout_s: float = 60,
    ) -> CephCluster:
        """The monitor, the OSD, the pools, then every gateway, each S3 user (access key,
        secret), and a wait until every gateway answers."""
        for folder in ("run", "log", "mon/ceph-a", "osd/ceph-0"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        fsid = str(uuid.uuid4())
        values = {"fsid": fsid, "address": self.address, "mon_port": self.mon_port}
        conf = CONF.format(**values, root=self.root, memstore_bytes=memstore_bytes)
        for gateway in gateways:
            (self.root / gateway.name).mkdir(exist_ok=True)
            conf += GATEWAY.format(name=gateway.name, endpoint=gateway.endpoint, root=self.root)
        (self.root / "ceph.conf").write_text(conf)
        keyring, monmap = str(self.root / "keyring"), str(self.root / "monmap")
        self._run("ceph-authtool", "--create-keyring", keyring, "--gen-key", "-n", "mon.",
                  "--cap", "mon", "allow *")  # fmt: skip
        address = f"[v1:{self.address}:{self.mon_port}]"
        self._run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", address, monmap)
        self._run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap, "-c", self.conf)
        self._daemon(self.wrap, "ceph-mon", "-i", "a")
        deadline = time.monotonic() + timeout_s
        self._until(deadline, lambda: self.ceph("mon", "stat", timeout=5) is not None)
        osd = self.ceph("osd", "create").strip()
        self._run("ceph-osd", "-i", osd, "--mkfs", "-c", self.conf)
        self._start_osd(osd, deadline)
        for pool in POOLS:
            self.ceph("osd", "pool", "create", pool, "8")
            self.ceph("osd", "pool", "application", "enable", pool, "rgw")
        for gateway in gateways:
            self._daemon(gateway.wrap, "radosgw", "-n", f"client.{gateway.name}")
        for access_key, secret_key in users:
            self._run("radosgw-admin", "-c", self.conf, "user", "create", f"--uid={access_key}",
                      f"--display-name={access_key}", f"--access-key={access_key}",
                      f"--secret={secret_key}")  # fmt: skip
        for gateway in gateways:
            self._until(deadline, functools.partial(_answers, gateway))
        return self

    def _start_osd(self, osd: str, deadline: float) -> None:
        """The OSD, started again while it exits at once: at its start it sends the monitor
        commands that a monitor a second old may refuse ("wrong fsid", before the OSD holds
        the monitor's map), and then it ends."""
        for _ in range(10):
            self._daemon(self.wrap, "ceph-osd", "-i", osd)
            started = time.monotonic()
            while time.monotonic() - started < 3 and self.processes[-1].poll() is None:
                with contextlib.suppress(S3DlioRayError):
                    if " 1 up" in self.ceph("osd", "stat", timeout=1):
                        return
                time.sleep(0.2)
            if self.processes[-1].poll() is None:
                self._until(deadline, lambda: " 1 up" in self.ceph("osd", "stat", timeout=2))
                return
            self.processes.pop()
            time.sleep(1)
        raise S3DlioRayError(f"the Ceph OSD would not start: {self.logs()}")

    def _until(self, deadline: float, ready: Callable[[], bool]) -> None:
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    name = self.names.get(process.pid, "a daemon")
                    raise S3DlioRayError(f"{name} exited {process.returncode}: {self.logs()}")
            with contextlib.suppress(S3DlioRayError, subprocess.TimeoutExpired):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise S3DlioRayError(f"the Ceph cluster did not come up: {self.logs()}")
            time.sleep(0.2)

    def logs(self) -> str:
        return " | ".join(
            f"{path.name}: {path.read_text(errors='replace')[-400:]}"
            for path in sorted((self.root / "log").glob("*"))
        )

    def stop(self) -> None:
        for process in reversed(self.processes):
            if process.poll() is None:
                process.terminate()
        for process in reversed(self.processes):
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        self.processes.clear()


def _answers(gateway: Gateway) -> bool:
    return answers(gateway.address, gateway.wrap)

"""A Ceph RGW on loopback, from Debian's Ceph 16.2 packages, for the suite and by hand.

Ceph 16.2 has no single-process backend for its gateway, so this starts the smallest cluster one
can serve: one monitor, one OSD keeping its data in memory (`memstore`, capped), no manager, the
gateway's pools made before it starts, and `radosgw` with the beast frontend on 127.0.0.1. Every
daemon runs in the foreground under one folder (data, sockets, logs, pids), so stopping is
killing the processes this launcher started, and removing that folder.

    python tests/rgw.py [--port 7480] [--folder DIR]    # prints the endpoint and keys, until ^C

Needs `apt-get install ceph-mon ceph-osd radosgw ceph-common` (`.ci/run` installs them).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

ACCESS_KEY = "rgw-test-access-key"
SECRET_KEY = "rgw-test-secret-key-not-a-real-one"
POOLS = (
    ".rgw.root",
    "default.rgw.control",
    "default.rgw.meta",
    "default.rgw.log",
    "default.rgw.buckets.index",
    "default.rgw.buckets.data",
    "default.rgw.buckets.non-ec",
)
DAEMONS = ("ceph-mon", "ceph-osd", "radosgw")


def installed() -> bool:
    return all(shutil.which(name) for name in (*DAEMONS, "ceph", "radosgw-admin"))


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


CONF = """[global]
fsid = {fsid}
mon host = [v1:127.0.0.1:{mon_port}]
mon initial members = a
ms bind msgr2 = false
ms bind ipv6 = false
public addr = 127.0.0.1
cluster addr = 127.0.0.1
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

[client.rgw]
rgw frontends = beast endpoint=127.0.0.1:{port} tcp_nodelay=1
rgw data = {root}/rgw
rgw gc obj min wait = 30
rgw gc processor period = 30
rgw gc processor max time = 30
"""


@dataclass
class Rgw:
    """A running gateway: its endpoint and keys; stop() ends what start() began."""

    root: Path
    port: int
    processes: list[subprocess.Popen] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def conf(self) -> str:
        return str(self.root / "ceph.conf")

    def ceph(self, *args: str, timeout: float = 30) -> str:
        """A `ceph` command against this cluster, its output; tried again for a while, since a
        monitor that just started may refuse a command before it knows its own map (EPERM)."""
        deadline = time.monotonic() + timeout
        while True:
            done = subprocess.run(
                ["ceph", "-c", self.conf, "--connect-timeout", "5", *args],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            if done.returncode == 0:
                return done.stdout
            if time.monotonic() > deadline:
                raise RuntimeError(f"ceph {' '.join(args)}: {done.stderr.strip()[-500:]}")
            time.sleep(0.3)

    def _daemon(self, *command: str) -> None:
        log = (self.root / "log" / f"{command[0]}.out").open("ab")
        self.processes.append(
            subprocess.Popen(
                [*command, "-f", "-c", self.conf],
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        )

    def start(self, memstore_bytes: int = 2 << 30, timeout_s: float = 60) -> Rgw:
        for folder in ("run", "log", "mon/ceph-a", "osd/ceph-0", "rgw"):
            (self.root / folder).mkdir(parents=True, exist_ok=True)
        mon_port, fsid = free_port(), str(uuid.uuid4())
        (self.root / "ceph.conf").write_text(
            CONF.format(
                fsid=fsid,
                mon_port=mon_port,
                root=self.root,
                port=self.port,
                memstore_bytes=memstore_bytes,
            )
        )

        def run(*command: str) -> None:
            done = subprocess.run(command, capture_output=True, text=True, timeout=60)
            if done.returncode != 0:
                raise RuntimeError(
                    f"{' '.join(command)}: {done.stdout[-300:]} {done.stderr[-500:]}"
                )

        run("ceph-authtool", "--create-keyring", str(self.root / "keyring"), "--gen-key",
            "-n", "mon.", "--cap", "mon", "allow *")  # fmt: skip
        monmap = str(self.root / "monmap")
        address = f"[v1:127.0.0.1:{mon_port}]"
        run("monmaptool", "--create", "--fsid", fsid, "--addv", "a", address, monmap)
        run("ceph-mon", "--mkfs", "-i", "a", "--monmap", monmap, "-c", self.conf)
        self._daemon("ceph-mon", "-i", "a")
        deadline = time.monotonic() + timeout_s
        self._until(deadline, lambda: self.ceph("mon", "stat", timeout=5) is not None)
        osd = self.ceph("osd", "create").strip()
        run("ceph-osd", "-i", osd, "--mkfs", "-c", self.conf)
        self._start_osd(osd, deadline)
        for pool in POOLS:
            self.ceph("osd", "pool", "create", pool, "8")
            self.ceph("osd", "pool", "application", "enable", pool, "rgw")
        self._daemon("radosgw", "-n", "client.rgw")
        subprocess.run(
            ["radosgw-admin", "-c", self.conf, "user", "create", "--uid=test",
             "--display-name=test", f"--access-key={ACCESS_KEY}", f"--secret={SECRET_KEY}"],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        self._until(deadline, self._answers)
        return self

    def _start_osd(self, osd: str, deadline: float) -> None:
        """The OSD, started again while it exits at once: at its start it sends the monitor
        commands that a monitor a second old may refuse ("wrong fsid", before the OSD holds
        the monitor's map), and then it ends."""
        for _ in range(10):
            self._daemon("ceph-osd", "-i", osd)
            started = time.monotonic()
            while time.monotonic() - started < 3 and self.processes[-1].poll() is None:
                with contextlib.suppress(RuntimeError):
                    if " 1 up" in self.ceph("osd", "stat", timeout=1):
                        return
                time.sleep(0.2)
            if self.processes[-1].poll() is None:
                self._until(deadline, lambda: " 1 up" in self.ceph("osd", "stat", timeout=2))
                return
            self.processes.pop()
            time.sleep(1)
        raise RuntimeError(f"the OSD would not start: {self.logs()}")

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(self.url, timeout=2).read()
        except urllib.error.HTTPError:
            return True
        except OSError:
            return False
        return True

    def _until(self, deadline: float, ready) -> None:
        while True:
            for process in self.processes:
                if process.poll() is not None:
                    raise RuntimeError(
                        f"{process.args[0]} exited {process.returncode}: {self.logs()}"
                    )
            with contextlib.suppress(RuntimeError, subprocess.TimeoutExpired):
                if ready():
                    return
            if time.monotonic() > deadline:
                raise RuntimeError(f"the Ceph cluster did not come up: {self.logs()}")
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


@contextlib.contextmanager
def running_rgw(port: int | None = None) -> Iterator[Rgw]:
    root = Path(tempfile.mkdtemp(prefix="rgw-"))
    gateway = Rgw(root, port or free_port())
    try:
        yield gateway.start()
    finally:
        gateway.stop()
        shutil.rmtree(root, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=None)
    args = parser.parse_args()
    # SIGTERM (timeout, kill) unwinds like ^C, so the servers started here stop with it.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    started = time.monotonic()
    with running_rgw(args.port) as gateway:
        print(f"Ceph RGW at {gateway.url} (up in {time.monotonic() - started:.1f} s)")
        print(f"AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY={SECRET_KEY}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()

"""A Ceph RGW on loopback for the suite and by hand: the lab's Ceph launcher (one mon, one
in-memory OSD, one gateway) with every daemon on 127.0.0.1.

    python tests/rgw.py [--port 7480]    # prints the endpoint and keys, until ^C

Needs `apt-get install ceph-mon ceph-osd radosgw ceph-common` (`.ci/run` installs them).
"""

from __future__ import annotations

import argparse
import contextlib
import shutil
import signal
import socket
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from s3dlio_ray._internal.lab.ceph import CephCluster, Gateway, installed

ACCESS_KEY = "rgw-test-access-key"
SECRET_KEY = "rgw-test-secret-key-not-a-real-one"
__all__ = ["ACCESS_KEY", "SECRET_KEY", "free_port", "installed", "running_rgw"]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@dataclass
class Rgw:
    cluster: CephCluster
    url: str


@contextlib.contextmanager
def running_rgw(port: int | None = None) -> Iterator[Rgw]:
    root = Path(tempfile.mkdtemp(prefix="rgw-"))
    cluster = CephCluster(root, mon_port=free_port())
    gateway = Gateway("rgw", f"127.0.0.1:{port or free_port()}")
    try:
        cluster.start([gateway], [(ACCESS_KEY, SECRET_KEY)])
        yield Rgw(cluster, gateway.address)
    finally:
        cluster.stop()
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

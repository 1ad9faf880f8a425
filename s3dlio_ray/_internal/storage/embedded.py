"""The embedded S3 endpoint: a moto server process on 127.0.0.1, for runs with no S3 at hand."""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import time
import urllib.request

from s3dlio_ray._internal.model.errors import S3DlioRayError
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

EMBEDDED_CREDENTIALS = StaticCredentials("s3dlio-ray-embedded", "s3dlio-ray-embedded-secret")


def free_port(host: str = "127.0.0.1") -> int:
    with socket.socket() as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


class EmbeddedS3:
    """Starts `moto.server` in its own process (it must not share our GIL) and stops it."""

    def __init__(self, host: str = "127.0.0.1", port: int | None = None) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def start(self, timeout_s: float = 30.0) -> EmbeddedS3:
        self._process = subprocess.Popen(
            [sys.executable, "-m", "moto.server", "-H", self.host, "-p", str(self.port)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise S3DlioRayError(
                    f"the embedded S3 endpoint (moto server) exited at start with code "
                    f"{self._process.returncode}; is port {self.port} free?"
                )
            with (
                contextlib.suppress(OSError),
                urllib.request.urlopen(f"{self.url}/moto-api/", timeout=1),
            ):
                return self
            time.sleep(0.1)
        self.stop()
        raise S3DlioRayError(f"the embedded S3 endpoint did not answer within {timeout_s:g} s")

    def stop(self) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._process = None

    def __enter__(self) -> EmbeddedS3:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

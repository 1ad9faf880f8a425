"""The machine's own floors, beside which a phase's client cost reads: how fast one core hashes
SHA-256 (what signing a payload costs), seals with the bulk cipher of the TLS suite this client
offers first (AES-256-GCM with OpenSSL's defaults: what HTTPS costs), and how little CPU a bare
request and response over loopback TCP take.

Measured at most once per node, tool version and Python, in under a second, and cached in
`~/.cache/s3dlio-ray/floors.json` (a lock keeps a node's actors from measuring at once, each
disturbing the others); `measure_floors: false` leaves them out.
"""

from __future__ import annotations

import contextlib
import fcntl
import hashlib
import json
import os
import platform
import socket
import ssl
import threading
import time
from collections.abc import Callable
from pathlib import Path

from s3dlio_ray._internal.model.resources import MachineFloors
from s3dlio_ray._internal.model.version import VERSION

FORMAT = 2
"""What the cache's entries measured (2: the first offered suite's cipher): older ones are
measured again."""
SPAN_S = 0.15
"""How long each floor is measured."""
CHUNK = 1 << 20
REQUEST = b"GET /floor HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"
RESPONSE = b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n"


def cache_path() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "s3dlio-ray" / "floors.json"


def machine_floors(cache: Path | None = None) -> MachineFloors | None:
    """This node's floors, from the cache or measured now (None: neither could be had)."""
    path = cache or cache_path()
    key = (
        f"{socket.gethostname()} s3dlio-ray {VERSION} python {platform.python_version()} "
        f"floors {FORMAT}"
    )
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path.with_suffix(".lock"), "w") as lock:
            fcntl.flock(lock, fcntl.LOCK_EX)
            known = _read(path)
            if key in known:
                return MachineFloors(**known[key])
            floors = measure()
            known[key] = floors.to_dict()
            temporary = path.with_suffix(".tmp")
            temporary.write_text(json.dumps(known, indent=1))
            temporary.replace(path)
            return floors
    except OSError:
        return None


def _read(path: Path) -> dict:
    with contextlib.suppress(OSError, ValueError):
        doc = json.loads(path.read_text())
        if isinstance(doc, dict):
            return doc
    return {}


def measure() -> MachineFloors:
    return MachineFloors(sha256_gbps(), *aead_gbps(), loopback_request_us())


def _per_core_gbps(work: Callable[[], object]) -> float:
    """GB per CPU second `work` (one CHUNK per call) does, over SPAN_S."""
    done, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
    while time.perf_counter() - wall0 < SPAN_S:
        work()
        done += CHUNK
    return done / 1e9 / max(time.process_time() - cpu0, 1e-6)


def sha256_gbps() -> float:
    data = bytes(CHUNK)
    return _per_core_gbps(lambda: hashlib.sha256(data).digest())


AEADS = {
    "AES_128_GCM": ("AES-128-GCM", "AESGCM", 16),
    "AES_256_GCM": ("AES-256-GCM", "AESGCM", 32),
    "AES128-GCM": ("AES-128-GCM", "AESGCM", 16),
    "AES256-GCM": ("AES-256-GCM", "AESGCM", 32),
    "CHACHA20_POLY1305": ("ChaCha20-Poly1305", "ChaCha20Poly1305", 32),
    "CHACHA20-POLY1305": ("ChaCha20-Poly1305", "ChaCha20Poly1305", 32),
}
"""A TLS suite's bulk cipher, by what the suite's name contains: name, cryptography's class, key."""


def first_suite() -> str:
    """The TLS suite this client offers first (OpenSSL's order; a TLS 1.3 server mostly takes
    it): TLS_AES_256_GCM_SHA384 with OpenSSL's defaults."""
    return str(ssl.create_default_context().get_ciphers()[0]["name"])


def aead_gbps(suite: str | None = None) -> tuple[float | None, str | None]:
    """The bulk cipher of `suite` (default: the first this client offers), sealing speed, where
    the `cryptography` package is installed (the standard library has no cipher to time);
    (None, None) where it is not, or the suite's cipher is not one of AEADS."""
    name = suite or first_suite()
    found = next((found for part, found in AEADS.items() if part in name), None)
    if found is None:
        return None, None
    try:
        from cryptography.hazmat.primitives.ciphers import aead
    except ImportError:
        return None, None
    label, kind, key_bytes = found
    cipher, nonce, data = getattr(aead, kind)(bytes(key_bytes)), bytes(12), bytes(CHUNK)
    return _per_core_gbps(lambda: cipher.encrypt(nonce, data, None)), label


def loopback_request_us() -> float:
    """CPU microseconds (both ends, one process) per bare request and response over loopback
    TCP: what no S3 client's request can cost less than on this machine."""
    with socket.create_server(("127.0.0.1", 0)) as server:
        port = server.getsockname()[1]
        stop = threading.Event()

        def answer() -> None:
            peer, _ = server.accept()
            with peer:
                while not stop.is_set() and peer.recv(4096):
                    peer.sendall(RESPONSE)

        thread = threading.Thread(target=answer, daemon=True)
        thread.start()
        with socket.create_connection(("127.0.0.1", port)) as client:
            client.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            count, cpu0, wall0 = 0, time.process_time(), time.perf_counter()
            while time.perf_counter() - wall0 < SPAN_S:
                client.sendall(REQUEST)
                client.recv(4096)
                count += 1
            cpu = time.process_time() - cpu0
            stop.set()
        thread.join(2)
    return cpu / max(count, 1) * 1e6

"""The SSL path not taken: blocking `ssl` sockets in threads, GETs of 10 MiB, plain and HTTPS.

    .venv/bin/python benchmarks/bench_ssl_path.py [--threads 8] [--rounds 3]

The engine decrypts on its event loop (the loop's SSL protocol over a memory BIO). The other path
Python offers is a socket-level SSL socket per connection in a thread: OpenSSL reads the socket
itself (no copy into a BIO) and releases the GIL while it decrypts. This measures that path at
its cheapest (a prebuilt request, `recv_into` straight into one 10 MiB buffer, nothing parsed but
the end of the head) against the null endpoint over HTTP and over HTTPS, so its TLS cost per GB
can be set beside the engine's (bench_transfer.py's null and null-tls endpoints).
"""

from __future__ import annotations

import argparse
import socket
import ssl
import statistics
import tempfile
import threading
import time
from pathlib import Path

from bench_transfer import cpu_seconds, test_ca, wait_for_port

from s3dlio_ray._internal.lab import null_endpoint

SIZE = 10 * 1024 * 1024
GETS_PER_THREAD = 8


def get_many(port: int, context: ssl.SSLContext | None) -> None:
    """GETs of one object on one connection, each response read into one buffer."""
    sock = socket.create_connection(("127.0.0.1", port))
    if context is not None:
        sock = context.wrap_socket(sock, server_hostname="127.0.0.1")
    request = f"GET /bench/object HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\n\r\n".encode()
    buffer = bytearray(SIZE + 64 * 1024)
    view = memoryview(buffer)
    for _ in range(GETS_PER_THREAD):
        sock.sendall(request)
        received, body_at = 0, -1
        while body_at < 0 or received - body_at < SIZE:
            received += sock.recv_into(view[received:])
            if body_at < 0:
                end = buffer.find(b"\r\n\r\n", 0, received)
                body_at = -1 if end < 0 else end + 4
    sock.close()


def measure(port: int, context: ssl.SSLContext | None, threads: int) -> float:
    """CPU seconds per GB of `threads` threads each GETting side by side."""
    started = cpu_seconds()
    workers = [threading.Thread(target=get_many, args=(port, context)) for _ in range(threads)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    return (cpu_seconds() - started) / (threads * GETS_PER_THREAD * SIZE / 1e9)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--threads", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    ca, chain, key = test_ca(Path(tempfile.mkdtemp()))
    context = ssl.create_default_context(cafile=ca)
    plain, secure = (
        null_endpoint.launch(str(SIZE)),
        null_endpoint.launch(str(SIZE), "--tls-cert", chain, "--tls-key", key),
    )
    ports = {"http": plain[0], "https": secure[0]}
    endpoints = [plain[1], secure[1]]
    samples: dict[str, list[float]] = {"http": [], "https": []}
    try:
        for port in ports.values():
            wait_for_port(port)
        time.sleep(0.5)
        for _ in range(args.rounds):
            for scheme, port in ports.items():
                samples[scheme].append(
                    measure(port, context if scheme == "https" else None, args.threads)
                )
    finally:
        for endpoint in endpoints:
            endpoint.terminate()
            endpoint.wait()
    plain, tls = (statistics.median(samples[s]) for s in ("http", "https"))
    print(f"{args.threads} threads, GET 10 MiB, medians of {args.rounds}: CPU s/GB")
    print(f"plain {plain:.3f}, TLS {tls:.3f}, TLS extra {tls - plain:.3f}")


if __name__ == "__main__":
    main()

"""The lab's object store: its core in the store namespace, one gateway per gateway namespace,
each behind its own shaped NIC, and a delaying relay in front of each when asked."""

from __future__ import annotations

import sys
import time
from pathlib import Path

from s3dlio_ray._internal.lab import ceph
from s3dlio_ray._internal.lab.netns import answers, spawn, wrap
from s3dlio_ray._internal.lab.plan import GATEWAY_PORT, INNER_PORT, STORE_PORT, Lab, StoreKind
from s3dlio_ray._internal.model.errors import S3DlioRayError


def start_store(lab: Lab, folder: Path, keys: tuple[str, str]) -> None:
    """The store of `lab.store` with `keys` (access key, secret) as its one user, every
    gateway answering at its lab address from the first host's namespace."""
    logs = folder / "logs"
    delayed = lab.delay_ms > 0
    inner = [
        ("127.0.0.1", INNER_PORT) if delayed else (lab.address(lab.gateway(g)), GATEWAY_PORT)
        for g in range(lab.gateways)
    ]
    python = sys.executable
    if lab.store is StoreKind.RGW:
        if not ceph.installed():
            raise S3DlioRayError(f"--store rgw needs Ceph: {ceph.PACKAGES}")
        cluster = ceph.CephCluster(folder / "ceph", lab.address(lab.core), wrap=wrap(lab.core))
        gateways = [
            ceph.Gateway(f"rgw.g{g + 1}", f"{host}:{port}", wrap(lab.gateway(g)))
            for g, (host, port) in enumerate(inner)
        ]
        cluster.start(gateways, [keys], memstore_bytes=4 << 30, timeout_s=90)
    elif lab.store is StoreKind.MOTO:
        core = lab.address(lab.core)
        moto = [python, "-m", "moto.server", "-H", core, "-p", str(STORE_PORT)]
        spawn([*wrap(lab.core), *moto], logs / "moto.log")
    else:
        for g, (host, port) in enumerate(inner):
            command = [python, "-m", "s3dlio_ray._internal.lab.null_endpoint", "--host", host,
                       "--port", str(port), "--object-size", lab.null_size]  # fmt: skip
            spawn([*wrap(lab.gateway(g)), *command], logs / f"null-g{g + 1}.log")
    for g, (host, port) in enumerate(inner):
        address = lab.address(lab.gateway(g))
        if lab.store is StoreKind.MOTO:
            target = f"{lab.address(lab.core)}:{STORE_PORT}"
        elif delayed:
            target = f"{host}:{port}"
        else:
            continue
        relay = [python, "-m", "s3dlio_ray._internal.lab.relay", f"{address}:{GATEWAY_PORT}",
                 target, "--delay-ms", f"{lab.delay_ms:g}"]  # fmt: skip
        spawn([*wrap(lab.gateway(g)), *relay], logs / f"relay-g{g + 1}.log")
    deadline = time.monotonic() + 60
    for url in lab.endpoints:
        while not answers(url, wrap(lab.host(0))):
            if time.monotonic() > deadline:
                raise S3DlioRayError(f"the lab's store did not answer at {url} (logs: {logs})")
            time.sleep(0.2)

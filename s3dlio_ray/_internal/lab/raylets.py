"""A Ray cluster across the lab's hosts: the head's raylet in the first host's namespace, one
more raylet in each other host's, all with token authentication and the lab's own folder."""

from __future__ import annotations

import os
import secrets
import shutil
import subprocess
import sys
from pathlib import Path

from s3dlio_ray._internal.lab import cgroups
from s3dlio_ray._internal.lab.plan import RAY_PORT, Lab
from s3dlio_ray._internal.model.errors import S3DlioRayError


def ray_command() -> str:
    beside = Path(sys.executable).parent / "ray"
    found = str(beside) if beside.exists() else shutil.which("ray")
    if found is None:
        raise S3DlioRayError("the lab needs Ray's `ray` command: pip install 'ray[default]'")
    return found


def environment(folder: Path) -> dict[str, str]:
    """What every Ray process of the lab, and every driver in it, needs: token authentication
    with the lab's token (in a file only root reads), no usage report."""
    token = folder / "ray-auth-token"
    if not token.exists():
        token.write_text(secrets.token_hex(32))
        token.chmod(0o600)
    return {
        "RAY_AUTH_MODE": "token",
        "RAY_AUTH_TOKEN_PATH": str(token),
        "RAY_USAGE_STATS_ENABLED": "0",
    }


def start_ray(lab: Lab, folder: Path) -> dict[str, str]:
    """The head, then one raylet per other host; the environment a driver needs."""
    ray, temp = ray_command(), folder / "ray"
    temp.mkdir(exist_ok=True)
    env = environment(folder)
    common = ["--temp-dir", str(temp), "--num-cpus", str(lab.cpus), "--disable-usage-stats"]
    head = lab.address(lab.host(0))
    commands = [[ray, "start", "--head", "--node-ip-address", head, "--port", str(RAY_PORT),
                 "--include-dashboard", "false", *common]]  # fmt: skip
    for h in range(1, lab.hosts):
        address = lab.address(lab.host(h))
        commands.append(
            [ray, "start", "--address", lab.ray_address, "--node-ip-address", address, *common]
        )
    logs = folder / "logs"
    logs.mkdir(exist_ok=True)
    # Set to 0 (to keep a single-node Ray on loopback), this makes `ray start` refuse to join.
    inherited = {k: v for k, v in os.environ.items() if k != "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"}
    for h, command in enumerate(commands):
        # Output to a file: the daemons `ray start` leaves behind would hold a pipe open.
        log = logs / f"ray-start-h{h + 1}.log"
        with log.open("ab") as out:
            done = subprocess.run(
                cgroups.in_host(lab.host(h), command),
                env={**inherited, **env},
                stdout=out,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
                timeout=120,
                start_new_session=True,
            )
        if done.returncode != 0:
            said = log.read_text(errors="replace").strip().splitlines()[-3:]
            raise S3DlioRayError(f"ray start on host {h + 1}: {' / '.join(said)}")
    return {"RAY_ADDRESS": lab.ray_address, **env}

"""A lab host's CPU: one cgroup per host (`s3lab-NAME-hI`) under the machine's CPU controller,
with a quota when `lab up --host-cpu CORES` asks for one, and the cgroup tree mounted inside the
host's namespace as a real host has it.

`ip netns exec` mounts a fresh /sys for the namespace, which hides /sys/fs/cgroup; a process in
a host mounts the CPU controller again in its own mount namespace, so an actor reads its quota
where it would on a machine or in a Kubernetes pod. cgroup v1 (`cpu.cfs_quota_us`) and v2
(`cpu.max`) both work.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from pathlib import Path

from s3dlio_ray._internal.lab.netns import wrap
from s3dlio_ray._internal.storage.machine import CGROUP_ROOT, cpu_controller

PERIOD_US = 100_000


def cpu_root() -> Path | None:
    """Where the hosts' cgroups go: the machine's CPU controller, where its children may be
    given CPU limits (v2: `cpu` in the root's subtree_control; None: no cgroups to use)."""
    root = cpu_controller()
    if (
        root == CGROUP_ROOT
        and "cpu" not in (CGROUP_ROOT / "cgroup.subtree_control").read_text().split()
    ):
        return None
    return root


def group(namespace: str) -> Path | None:
    root = cpu_root()
    return None if root is None else root / namespace


def made(namespace: str) -> Path | None:
    """The host's cgroup, if `make` made it."""
    path = group(namespace)
    return path if path is not None and path.is_dir() else None


def make(namespace: str, cores: float | None) -> Path | None:
    """The host's cgroup, made, with `cores` of CPU (None: no quota)."""
    path = group(namespace)
    if path is None:
        return None
    path.mkdir(exist_ok=True)
    limit(path, cores)
    return path


def limit(path: Path, cores: float | None) -> None:
    """Caps the cgroup at `cores` (None: lifts the cap)."""
    quota = -1 if cores is None else max(1000, round(cores * PERIOD_US))
    if (path / "cpu.max").exists():
        text = "max" if quota < 0 else str(quota)
        (path / "cpu.max").write_text(f"{text} {PERIOD_US}")
        return
    (path / "cpu.cfs_period_us").write_text(str(PERIOD_US))
    (path / "cpu.cfs_quota_us").write_text(str(quota))


def remove(namespaces: Sequence[str]) -> None:
    """Removes the hosts' cgroups (their processes already ended)."""
    for namespace in namespaces:
        path = group(namespace)
        if path is not None and path.is_dir():
            with contextlib.suppress(OSError):
                path.rmdir()


def in_host(namespace: str, command: Sequence[str]) -> list[str]:
    """`command` run in host `namespace`: in its network namespace and, once made, its cgroup."""
    return _inside(made(namespace), wrap(namespace), command)


def _inside(path: Path | None, wrapped: Sequence[str], command: Sequence[str]) -> list[str]:
    """`command` run in cgroup `path` (joined before `wrapped`, the namespace's prefix, hides
    the tree), with the CPU controller mounted again where the command looks for it."""
    if path is None:
        return [*wrapped, *command]
    root = path.parent
    if root == CGROUP_ROOT:
        mount = f"mount -t cgroup2 none {CGROUP_ROOT}"
    else:
        options = root.name
        mount = (
            f"mount -t tmpfs cgroup_root {CGROUP_ROOT} && mkdir -p {root} && "
            f"mount -t cgroup -o {options} cgroup {root}"
        )
    return [
        "sh",
        "-c",
        f'echo $$ > {path}/cgroup.procs && exec "$@"',
        "sh",
        *wrapped,
        "sh",
        "-c",
        f'{mount}; exec "$@"',
        "sh",
        *command,
    ]

"""The lab: hosts with their own shaped NICs (network namespaces), a Ray cluster with one raylet
per host, moto behind a gateway; each figure checked against the links' rates. Needs root, as
CI has; everything it makes is under the lab name `suite` and subnet 10.252.0.0/24."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from conftest import CLI, ROOT, cli_env

from s3dlio_ray._internal.lab.netns import pids

NAME, SUBNET = "suite", "10.252.0.0/24"
RATE_BYTES = 100e6 / 8  # --nic-rate 100mbit
MIB = 1 << 20

pytestmark = [
    pytest.mark.integration,
    pytest.mark.skipif(
        os.geteuid() != 0, reason="the lab makes network namespaces: it needs root (CI has it)"
    ),
]


def lab(*args: str, name: str = NAME, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run(
        [*CLI, "lab", "--name", name, *args],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def lab_traces(name: str) -> dict[str, list[str]]:
    """What of lab `name` the machine still has: namespaces, links in this namespace,
    processes, files."""
    namespaces = subprocess.run(["ip", "netns", "list"], capture_output=True, text=True).stdout
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    processes = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if f"s3dlio-ray-lab/{name}/" in command or f"s3lab-{name}-" in command:
                processes.append(command)
    return {
        "namespaces": [n for n in namespaces.split() if n.startswith(f"s3lab-{name}-")],
        "links": [line for line in links.splitlines() if "veth" in line or "br0" in line],
        "processes": processes,
        "files": [str(p) for p in Path("/run/s3dlio-ray-lab").glob(f"{name}*")],
        "cgroups": [str(p) for p in Path("/sys/fs/cgroup").glob(f"*/s3lab-{name}-*")],
    }


def nothing_left(name: str) -> bool:
    return not any(lab_traces(name).values())


@pytest.fixture(scope="module")
def three_hosts():
    done = lab("up", "--hosts", "3", "--nic-rate", "100mbit", "--store", "moto",
               "--subnet", SUBNET, "--host-cpu", "1.5")  # fmt: skip
    try:
        assert done.returncode == 0, done.stderr
        exports = dict(
            line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines()
        )
        yield exports, done.stderr
    finally:
        down = lab("down")
        assert down.returncode == 0, down.stderr


def run_in_lab(tmp_path: Path, workload: dict, *flags: str) -> dict:
    """`s3dlio-ray lab exec -- s3dlio-ray run W.yaml FLAGS` with no endpoint or address given:
    the lab's environment names them. The result file, read."""
    tmp_path.mkdir()
    path = tmp_path / "w.yaml"
    path.write_text(json.dumps({"name": "lab", "executor": "ray", **workload}))
    done = lab("exec", "--", *CLI, "run", str(path), "--output", str(tmp_path), "--quiet",
               *flags, timeout=180)  # fmt: skip
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return json.loads(next(tmp_path.glob("lab-*.json")).read_text())


def test_lab_up_prints_its_environment_and_map(three_hosts):
    exports, map_text = three_hosts
    assert exports["RAY_ADDRESS"].startswith("10.252.0.") and exports["RAY_AUTH_MODE"] == "token"
    assert exports["AWS_ENDPOINT_URL_S3"] == "http://10.252.0.3:80"
    assert exports["AWS_SECRET_ACCESS_KEY"] not in map_text
    assert exports["S3DLIO_NIC_GBPS"] == "0.1"
    hosts = [line for line in map_text.splitlines() if f"s3lab-{NAME}-h" in line]
    assert len(hosts) == 3 and all("100mbit" in line for line in hosts), map_text
    status = lab("status")
    assert status.returncode == 0 and "answers" in status.stdout, status.stdout
    assert "3 hosts (1.5 cores each)" in map_text
    probe = "from s3dlio_ray._internal.storage.machine import HostProbe; "
    probe += "print(HostProbe([]).capacity_cores)"
    seen = lab("exec", "--host", "2", "--", sys.executable, "-c", probe)
    assert seen.returncode == 0 and seen.stdout.strip() == "1.5", seen.stdout + seen.stderr


def test_a_second_lab_of_the_name_or_on_its_subnet_is_refused_before_anything_is_made(
    three_hosts,
):
    again = lab("up", "--hosts", "1", "--store", "null", "--subnet", "10.253.0.0/24")
    assert again.returncode == 2 and "is up already" in again.stderr, again.stderr
    clash = lab("up", "--hosts", "1", "--store", "null", "--subnet", "10.252.0.128/25",
                name="other")  # fmt: skip
    assert clash.returncode == 2, clash.stderr
    assert clash.stderr.strip().splitlines() == [
        "s3dlio-ray: error: --subnet 10.252.0.128/25 overlaps 10.252.0.0/24, in use on this "
        "machine: give another private subnet"
    ]
    assert not any(lab_traces("other").values())


def test_three_hosts_move_three_nics_worth_each_node_at_its_nic(three_hosts, tmp_path):
    workload = {"objects": 48, "object_size": "4MiB", "phases": ["put", "get", "cleanup"]}
    three = run_in_lab(tmp_path / "three", workload)
    one = run_in_lab(tmp_path / "one", {**workload, "objects": 16}, "--executor", "local")
    for index, op in enumerate(("put", "get")):
        phase, single = three["phases"][index], one["phases"][index]
        assert phase["phase"] == op and phase["objects"] == 48 and phase["errors"] == 0
        assert len(phase["nodes"]) == 3
        for node, figures in phase["nodes"].items():
            assert figures["objects"] == 16, (node, figures["objects"])
            assert 0.8 * RATE_BYTES <= figures["gbps"] * 1e9 <= 1.2 * RATE_BYTES, (op, node)
            verdict = phase["bottleneck"]["nodes"][node]
            assert verdict["kind"] == "client-network", (op, node, verdict)
            assert verdict["where"].startswith(f"{node} ") and verdict["evidence"]["nic"]
            assert verdict["evidence"]["nic_speed_gbps"] == 0.1
            assert 0.09 <= verdict["evidence"]["nic_gbps"] <= 0.11, (op, node, verdict)
        assert phase["bottleneck"]["kind"] == "client-network", phase["bottleneck"]
        assert phase["gbps"] * 1e9 >= 2.4 * RATE_BYTES, op
        assert phase["gbps"] >= 2.5 * single["gbps"], (op, phase["gbps"], single["gbps"])
    assert phase["verified"] == 48


def raylet_of(namespace: str) -> int:
    for pid in pids(namespace):
        try:
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                return pid
        except OSError:
            continue
    raise AssertionError(f"no raylet in {namespace}")


def test_a_raylet_killed_mid_put_loses_no_object(three_hosts, tmp_path):
    path = tmp_path / "w.yaml"
    workload = {"name": "lab", "executor": "ray", "objects": 90, "object_size": "4MiB",
                "phases": ["put", "get", "cleanup"]}  # fmt: skip
    path.write_text(json.dumps(workload))
    command = [*CLI, "lab", "--name", NAME, "exec", "--", *CLI, "run", str(path), "--output",
               str(tmp_path)]  # fmt: skip
    process = subprocess.Popen(
        command, cwd=ROOT, env=cli_env(), stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True,
    )  # fmt: skip
    said = []
    assert process.stdout is not None
    for line in process.stdout:
        said.append(line)
        if line.startswith("put: ") and int(line.split()[1].split("/")[0]) >= 5:
            os.kill(raylet_of(f"s3lab-{NAME}-h3"), signal.SIGKILL)
            break
    else:
        raise AssertionError("".join(said))
    rest, _ = process.communicate(timeout=180)
    said.append(rest)
    assert process.returncode == 0, "".join(said)[-3000:]
    result = json.loads(next(tmp_path.glob("lab-*.json")).read_text())
    put, get = result["phases"][0], result["phases"][1]
    assert put["objects"] == 90 and not put["failed"], put["failed"]
    assert put["bytes"] == 90 * 4 * MIB
    # Host 3's actor died mid-phase (it is killed a second or two into a 10-s share), and its
    # share was finished by the others, each object once.
    assert "died during put" in "".join(said)
    lost = "10.252.0.6"  # host 3: after the store's core, the gateway, hosts 1 and 2
    assert sum(n["objects"] for n in put["nodes"].values()) == 90
    assert put["nodes"].get(lost, {"objects": 0})["objects"] < 30
    assert get["objects"] == 90 and get["verified"] == 90
    assert "cleanup: 90 objects deleted" in "".join(said)


def test_down_after_an_up_killed_half_way_leaves_nothing():
    name = "crash"
    env = cli_env()
    links_before = root_links()
    up = subprocess.Popen(
        [*CLI, "lab", "--name", name, "up", "--hosts", "2", "--store", "null",
         "--subnet", "10.253.0.0/24"],
        cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )  # fmt: skip
    deadline = time.monotonic() + 60
    # Killed once its second host's raylet is starting: namespaces, links, the store and the
    # head are made.
    while not Path(f"/run/s3dlio-ray-lab/{name}/logs/ray-start-h2.log").exists():
        assert up.poll() is None and time.monotonic() < deadline
        time.sleep(0.05)
    up.kill()
    up.wait()
    assert any(lab_traces(name).values())
    down = lab("down", name=name)
    assert down.returncode == 0 and "removed" in down.stderr, down.stderr
    assert not any(lab_traces(name).values()), lab_traces(name)
    # This machine's own links (its ifb devices among them) are as they were.
    assert root_links() == links_before


def root_links() -> list[str]:
    links = subprocess.run(["ip", "-o", "link"], capture_output=True, text=True).stdout
    return sorted(line.split(":")[1].strip() for line in links.splitlines())


def test_lab_is_refused_without_roots_powers():
    """A user's process holds no capability; the check reads the same bits, so the test drops
    them from a root process (a user's own install cannot run this suite's interpreter)."""
    drop = "--bounding-set=-net_admin,-sys_admin"
    done = subprocess.run(
        ["setpriv", drop, *CLI, "lab", "--name", "nobody", "up", "--hosts", "1"],
        cwd=ROOT,
        env=cli_env(),
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "s3dlio-ray: error: lab: needs root (CAP_NET_ADMIN and CAP_SYS_ADMIN) to make "
        "namespaces, links and qdiscs: run it with sudo"
    ]
    assert not lab_traces("nobody")["files"]


def test_nothing_of_the_suite_lab_remains_after_down(three_hosts):
    """Last in the module: the fixture's lab, taken down here by hand, leaves nothing."""
    assert lab_traces(NAME)["namespaces"]
    down = lab("down")
    assert down.returncode == 0, down.stderr
    assert not any(lab_traces(NAME).values()), lab_traces(NAME)

"""The lab's matrix: hosts with their own shaped NICs, a Ray cluster across them, gateways.

    sudo .venv/bin/python benchmarks/bench_lab.py                 # every scenario, ~15 min
    sudo .venv/bin/python benchmarks/bench_lab.py --only nic,delay --seconds 20

Each scenario makes its own lab (`s3dlio-ray lab up`, lab name `bench`, subnet 10.254.0.0/24),
runs the tool in it through `lab exec` as a user would (no endpoint or Ray address given), reads
the result file and takes the lab down. Rates are the steady ones: a node's bytes over the
seconds of a timed phase but its first two and its last one; the cluster's, their sum. Scenarios:

- `nic`: 1, 2 and 3 client hosts, each NIC shaped to --rate, the null endpoint behind an
  unshaped gateway; PUT then GET of 4 MiB objects. Claims: N hosts >= 0.9 x N x one host; one
  host >= 85 % of its NIC.
- `nics`: one host with two NICs at --rate, two actors steered by the cluster controller (two
  actors adapting alone on one shared NIC swing between 0.6 and 1.0 of it); `bind_addresses`
  with one address, then both. Claim: both >= 1.8 x one.
- `gateways`: Ceph RGW, three gateways each behind its own NIC at --gateway-rate, one client host
  at 1gbit (each gateway reaches RADOS through a second, unshaped NIC); timed PUT and GET, one
  endpoint, then all three. Claims: three >= 2.7 x one; each endpoint's figure
  within 20 % of its gateway's link.
- `loss`: three hosts at 100mbit, moto; 150 x 4 MiB PUT, GET, cleanup; host 3's link cut (then,
  in a fresh lab, its raylet killed) once 30 objects are stored. Claims: every object stored
  once, read back and verified, deleted; the lost host's keys handed over within Ray's health
  check bound (failure threshold x (timeout + period): 5 x (10 s + 3 s) with Ray's defaults).
- `controller`: three hosts at 1gbit behind one gateway at --rate with 50 ms added (the relay):
  the shared bottleneck. GET of 64 KiB, two actors a node: `controller: actor`, `controller:
  cluster`, and the cluster controller with `cluster_target_gbps` at half the link. Claims
  (cluster): in flight <= 2 x the bandwidth-delay product, Jain's fairness over nodes >= 0.9;
  the target within 10 %.
- `delay`: one host at --rate, 40 ms added at the gateway; GET of 64 KiB with the adaptive
  controller and with a fixed 8 in flight. Claim: adaptive >= 85 % of the link.
- `limits`: the limit verdicts, one host, the null endpoint: its NIC at --rate (client-network,
  the NIC named, within 10 % of its rate; with target_gbps at a fifth of it: target); its NIC at
  1gbit behind a gateway link at --gateway-rate (server) or behind 50 ms at the gateway with a
  fixed 8 in flight (server); its NIC at 10gbit and its cgroup held to a tenth of a core
  (client-cpu, the adaptive limit flat and held_by client-cpu).
- `metrics`: three hosts at 100mbit; a real Prometheus in the head's namespace scrapes the run
  each second; the Grafana dashboard's per-node rate query. Claim: each node within 20 % of its
  NIC.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import re
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections.abc import Callable, Iterator
from pathlib import Path

from ray._raylet import Config

from s3dlio_ray._internal.lab import cgroups, netns
from s3dlio_ray._internal.lab.plan import parse_rate
from s3dlio_ray._internal.model.results import PhaseResult, RunResult
from s3dlio_ray._internal.reports.files import load_result

ROOT = Path(__file__).resolve().parent.parent
CLI = [sys.executable, "-m", "s3dlio_ray"]
NAME, SUBNET = "bench", "10.254.0.0/24"
MIB = 1 << 20
# Ray's node health check: a node is dead after this many failed checks in a row, each given
# the timeout and the next started a period later (5 x (10 s + 3 s) by default).
RAY_DEAD_AFTER_S = (
    Config.health_check_failure_threshold()
    * (Config.health_check_timeout_ms() + Config.health_check_period_ms())
    / 1000
)
CLAIMS: list[tuple[str, bool, str]] = []


def claim(text: str, holds: bool, figures: str) -> None:
    CLAIMS.append((text, holds, figures))
    print(f"  {'PASS' if holds else 'FAIL'}: {text} ({figures})", flush=True)


def environment() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AWS_", "S3DLIO_", "RAY_"))}
    return {**env, "PYTHONPATH": str(ROOT)}


def lab_command(*args: str, timeout: float = 300) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [*CLI, "lab", "--name", NAME, *args],
        cwd=ROOT,
        env=environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
    )
    if done.returncode != 0:
        raise RuntimeError(f"lab {args[0]}: {done.stderr.strip()[-1500:]}")
    return done


@contextlib.contextmanager
def lab(*flags: str) -> Iterator[dict[str, str]]:
    """A lab up for the block; its `export` lines as a dict."""
    started = time.monotonic()
    done = lab_command("up", "--subnet", SUBNET, *flags)
    print(f"lab up {' '.join(flags)} ({time.monotonic() - started:.0f} s)", flush=True)
    try:
        yield dict(line.removeprefix("export ").split("=", 1) for line in done.stdout.splitlines())
    finally:
        lab_command("down")


def workload_file(folder: Path, workload: dict) -> Path:
    path = folder / "w.yaml"
    path.write_text(json.dumps({"name": "bench", "metrics_port": "off", **workload}))
    return path


def run(workload: dict, *flags: str, host: int = 1) -> RunResult:
    """The tool run through `lab exec` on host `host`; its result."""
    with tempfile.TemporaryDirectory() as folder:
        path = workload_file(Path(folder), workload)
        command = [
            "exec",
            "--host",
            str(host),
            "--",
            *CLI,
            "run",
            str(path),
            "--output",
            folder,
            "--quiet",
            *flags,
        ]
        lab_command(*command, timeout=600)
        return load_result(next(Path(folder).glob("bench-*.json")))


def steady(result: RunResult, phase: str) -> tuple[float, dict[str, float], float]:
    """A timed phase's steady bytes/s, the cluster's and each node's (its bytes over the seconds
    of the phase but the first two and the last one: a per-second median would count 4 MiB
    objects in whole ones), and the median of the cluster's requests in flight then."""
    rows = [r for r in result.timeseries if r.phase == phase and r.op == phase]
    ticks = set(sorted({r.t_s for r in rows})[2:-1])
    kept = [r for r in rows if r.t_s in ticks]
    nodes = {
        node: sum(r.bytes for r in mine) / sum(r.interval_s or 1.0 for r in mine)
        for node in sorted({r.node for r in kept})
        for mine in [[r for r in kept if r.node == node]]
    }
    in_flight = statistics.median(sum(r.in_flight for r in kept if r.t_s == t) for t in ticks)
    return sum(nodes.values()), nodes, in_flight


def timed(seconds: int, size: str, *ops: str, **more) -> dict:
    phases = [{op: {"duration_s": seconds, "verify": False}} for op in ops]
    return {"objects": 64, "object_size": size, "phases": phases, "executor": "ray", **more}


def mb(value: float) -> str:
    return f"{value / 1e6:.1f} MB/s"


def scenario_nic(args: argparse.Namespace) -> None:
    nic = parse_rate(args.rate) / 8
    figures: dict[int, dict[str, float]] = {}
    for hosts in (1, 2, 3):
        with lab("--hosts", str(hosts), "--nic-rate", args.rate, "--store", "null"):
            result = run(timed(args.seconds, "4MiB", "put", "get"))
        figures[hosts] = {}
        for op in ("put", "get"):
            cluster, nodes, _ = steady(result, op)
            figures[hosts][op] = cluster
            each = ", ".join(f"{n} {mb(v)}" for n, v in nodes.items())
            print(f"  {hosts} hosts {op}: {mb(cluster)} = {cluster / nic:.2f} NICs; {each}")
    print("\n| op | hosts | MB/s | N x NIC | / NIC | / (N x one host) |\n|---|---|---|---|---|---|")
    for op in ("put", "get"):
        one = figures[1][op]
        for hosts in (1, 2, 3):
            value = figures[hosts][op]
            print(
                f"| {op} | {hosts} | {value / 1e6:.1f} | {hosts * nic / 1e6:.1f} | "
                f"{value / nic:.2f} | {value / (hosts * one):.2f} |"
            )
        claim(f"{op}: one host reaches 85 % of its NIC", one >= 0.85 * nic, f"{one / nic:.2f}")
        for hosts in (2, 3):
            ratio = figures[hosts][op] / (hosts * one)
            claim(f"{op}: {hosts} hosts >= 0.9 x {hosts} x one host", ratio >= 0.9, f"{ratio:.2f}")


def scenario_nics(args: argparse.Namespace) -> None:
    nic = parse_rate(args.rate) / 8
    flags = ("--hosts", "1", "--nics", "2", "--nic-rate", args.rate, "--store", "null")
    with lab(*flags, "--cpus", "2"):
        first, second = "10.254.0.4", "10.254.0.5"
        rates = {}
        for name, addresses in (("one NIC", [first]), ("two NICs", [first, second])):
            work = timed(args.seconds, "4MiB", "get", actors_per_node=2, controller="cluster")
            work["bind_addresses"] = addresses
            cluster, _, _ = steady(run(work), "get")
            rates[name] = cluster
            print(f"  bind_addresses {addresses}: {mb(cluster)} = {cluster / nic:.2f} NICs")
    ratio = rates["two NICs"] / rates["one NIC"]
    claim("two NICs with bind_addresses >= 1.8 x one", ratio >= 1.8, f"{ratio:.2f}")


def endpoint_rates(phase: PhaseResult) -> dict[str, float]:
    return {url: s.bytes / phase.elapsed_s for url, s in phase.endpoints.items()}


def scenario_gateways(args: argparse.Namespace) -> None:
    link = parse_rate(args.gateway_rate) / 8
    flags = ("--hosts", "1", "--nic-rate", "1gbit", "--store", "rgw", "--gateways", "3")
    with lab(*flags, "--store-rate", args.gateway_rate) as env:
        endpoints = env["AWS_ENDPOINT_URL_S3"].split(",")
        rates: dict[str, float] = {}
        for name, chosen in (("one", endpoints[:1]), ("three", endpoints)):
            work = timed(args.seconds, "4MiB", "put", "get", executor="local")
            work["phases"].append("cleanup")
            result = run(work, "--endpoint", ",".join(chosen))
            for phase in result.phases[:2]:
                per = endpoint_rates(phase)
                rates[f"{name} {phase.phase}"] = sum(per.values())
                each = ", ".join(f"{u.rsplit('/', 1)[-1]} {v / link:.2f}" for u, v in per.items())
                print(
                    f"  {name} endpoint(s) {phase.phase}: {mb(sum(per.values()))}; "
                    f"each / link: {each}"
                )
                if name == "three":
                    worst = min(per.values()) / link
                    claim(
                        f"{phase.phase}: each gateway within 20 % of its link",
                        worst >= 0.8,
                        f"lowest {worst:.2f}",
                    )
    for op in ("put", "get"):
        ratio = rates[f"three {op}"] / rates[f"one {op}"]
        claim(f"{op}: three gateways >= 2.7 x one", ratio >= 2.7, f"{ratio:.2f}")


def scenario_loss(args: argparse.Namespace) -> None:
    for how in ("link cut", "raylet killed"):
        with lab("--hosts", "3", "--nic-rate", "100mbit", "--store", "moto"):
            lose_host_three(how)


def lose_host_three(how: str) -> None:
    workload = {
        "objects": 150,
        "object_size": "4MiB",
        "phases": ["put", "get", "cleanup"],
        "executor": "ray",
    }
    with tempfile.TemporaryDirectory() as folder:
        path = workload_file(Path(folder), workload)
        command = [
            *CLI,
            "lab",
            "--name",
            NAME,
            "exec",
            "--",
            *CLI,
            "run",
            str(path),
            "--output",
            folder,
        ]
        process = subprocess.Popen(
            command,
            cwd=ROOT,
            env=environment(),
            text=True,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
        )
        assert process.stdout is not None
        lost_at = handed_at = None
        said = []
        for line in process.stdout:
            said.append(line)
            stored = re.match(r"put: (\d+)/150 ", line)
            if lost_at is None and stored and int(stored.group(1)) >= 30:
                lose(how)
                lost_at = time.monotonic()
            if lost_at is not None and handed_at is None and "died during put" in line:
                handed_at = time.monotonic()
        process.wait()
        text = "".join(said)
        if process.returncode != 0 or lost_at is None:
            raise RuntimeError(f"the run failed: {text[-3000:]}")
        result = load_result(next(Path(folder).glob("bench-*.json")))
    put, get = result.phases[0], result.phases[1]
    handed = (handed_at - lost_at) if handed_at else float("inf")
    nodes = {node: s.objects for node, s in put.nodes.items()}
    print(
        f"  {how}: keys handed over after {handed:.1f} s; put {put.objects} objects by node "
        f"{nodes}, get verified {get.verified}; phase {put.elapsed_s:.1f} s"
    )
    exact = (
        put.objects == 150
        and not put.failed
        and put.stats.bytes == 150 * 4 * MIB
        and get.verified == 150
        and "cleanup: 150 objects deleted" in text
    )
    claim(f"{how}: every object stored once, verified, deleted", exact, f"{put.objects}/150")
    claim(
        f"{how}: handed over within Ray's bound ({RAY_DEAD_AFTER_S:g} s)",
        handed <= RAY_DEAD_AFTER_S,
        f"{handed:.1f} s",
    )


def lose(how: str) -> None:
    host = f"s3lab-{NAME}-h3"
    if how == "link cut":
        netns.cut(host, "eth0")
        return
    for pid in netns.pids(host):
        with contextlib.suppress(OSError):
            if Path(f"/proc/{pid}/comm").read_text().strip() == "raylet":
                os.kill(pid, signal.SIGKILL)


def jain(values: list[float]) -> float:
    return sum(values) ** 2 / (len(values) * sum(v * v for v in values))


def scenario_controller(args: argparse.Namespace) -> None:
    link, delay, size = parse_rate(args.rate) / 8, 0.05, 64 * 1024
    bdp = link * (delay + size / link) / size
    flags = ("--hosts", "3", "--nic-rate", "1gbit", "--store", "null", "--null-size", "64KiB")
    with lab(*flags, "--cpus", "2", "--store-rate", args.rate, "--delay-ms", "50"):
        layouts = {
            "actor (each alone)": {"controller": "actor"},
            "cluster": {"controller": "cluster"},
            "cluster, target = link / 2": {"cluster_target_gbps": link / 2 / 1e9},
        }
        print(f"\n| controller | rate / link | in flight | / BDP ({bdp:.0f}) | Jain (nodes) |")
        print("|---|---|---|---|---|")
        for name, tuning in layouts.items():
            work = timed(args.seconds, "64KiB", "get", actors_per_node=2, **tuning)
            result = run(work)
            cluster, nodes, in_flight = steady(result, "get")
            fairness = jain(list(nodes.values()))
            print(
                f"| {name} | {cluster / link:.2f} | {in_flight:.0f} | {in_flight / bdp:.1f} | "
                f"{fairness:.3f} |",
                flush=True,
            )
            if name == "cluster":
                claim(
                    "cluster: in flight <= 2 x BDP", in_flight <= 2 * bdp, f"{in_flight / bdp:.1f}"
                )
                claim(
                    "cluster: Jain's fairness over nodes >= 0.9", fairness >= 0.9, f"{fairness:.3f}"
                )
            elif name.startswith("cluster, target"):
                off = abs(cluster / (link / 2) - 1)
                claim("cluster target within 10 %", off <= 0.1, f"{cluster / link:.2f} of link")


def scenario_delay(args: argparse.Namespace) -> None:
    link = parse_rate(args.rate) / 8
    flags = ("--hosts", "1", "--nic-rate", args.rate, "--store", "null", "--null-size", "64KiB")
    with lab(*flags, "--delay-ms", "40"):
        rates = {}
        for name, tuning in (("adaptive", {}), ("fixed 8", {"concurrency": 8})):
            result = run(timed(args.seconds, "64KiB", "get", executor="local", **tuning))
            cluster, _, in_flight = steady(result, "get")
            rates[name] = cluster
            print(
                f"  {name}: {mb(cluster)} = {cluster / link:.2f} of the link, "
                f"{in_flight:.0f} in flight"
            )
    claim(
        "adaptive fills the link under 40 ms",
        rates["adaptive"] >= 0.85 * link,
        f"{rates['adaptive'] / link:.2f}, fixed 8: {rates['fixed 8'] / link:.2f}",
    )


def verdict_of(result: RunResult, phase: str) -> tuple[str, dict]:
    found = result.phase(phase)
    assert found is not None and found.bottleneck is not None, phase
    verdict = found.bottleneck.cluster
    evidence = dict(verdict.evidence)
    print(f"  {phase}: {found.gbps * 1000:.1f} MB/s, {verdict.describe()}", flush=True)
    return str(verdict.kind), evidence


def scenario_limits(args: argparse.Namespace) -> None:
    bits = parse_rate(args.rate)
    null = ("--hosts", "1", "--store", "null")
    with lab(*null, "--nic-rate", args.rate):
        kind, e = verdict_of(run(timed(args.seconds, "4MiB", "get", executor="local")), "get")
        nic = e.get("nic_gbps") or 0.0
        claim(
            "NIC below the store: client-network, the NIC named, within 10 % of its rate",
            kind == "client-network" and abs(nic * 1e9 / bits - 1) <= 0.1,
            f"{kind} {e.get('nic')} {nic:.3f} of {bits / 1e9:g} Gb/s",
        )
        target = bits / 8 / 5 / 1e9
        workload = timed(args.seconds, "4MiB", "get", executor="local", target_gbps=target)
        kind, e = verdict_of(run(workload), "get")
        achieved = float(e.get("achieved") or 0.0)
        claim(
            "target_gbps below all: target, held within 10 %",
            kind == "target" and abs(achieved / target - 1) <= 0.1,
            f"{kind} {achieved * 1000:.1f} of {target * 1000:.1f} MB/s",
        )
    with lab(*null, "--nic-rate", "1gbit", "--store-rate", args.gateway_rate):
        kind, e = verdict_of(run(timed(args.seconds, "4MiB", "get", executor="local")), "get")
        claim(
            "the store's link shaped, clients idle: server",
            kind == "server",
            f"{kind}, NIC {e.get('nic_utilization') or 0:.0%}, CPU {e.get('cpu') or 0:.0%}",
        )
    with lab(*null, "--nic-rate", "1gbit", "--null-size", "64KiB", "--delay-ms", "50"):
        fixed = timed(args.seconds, "64KiB", "get", executor="local", concurrency=8)
        kind, e = verdict_of(run(fixed), "get")
        claim(
            "50 ms added at the gateway, clients idle: server",
            kind == "server",
            f"{kind}, TTFB p50 {e.get('ttfb_p50_ms') or 0:.0f} ms, CPU {e.get('cpu') or 0:.0%}",
        )
    with lab(*null, "--nic-rate", "10gbit"):
        group = cgroups.made(f"s3lab-{NAME}-h1")
        assert group is not None, "no cgroup for the lab's host"
        cgroups.limit(group, 0.1)
        result = run(timed(args.seconds, "4MiB", "get", executor="local"))
        kind, e = verdict_of(result, "get")
        get = result.phase("get")
        assert get is not None
        samples = [s for a in get.actors for s in a.samples]
        held = [s.limit for s in samples if s.held_by == "client-cpu"]
        claim(
            "a tenth of a core, the link wide: client-cpu",
            kind == "client-cpu",
            f"{kind}, capacity {e.get('capacity_cores') or 0:g} cores, quota hit in "
            f"{e.get('quota_throttled') or 0:.0%} of periods",
        )
        claim(
            "the adaptive limit flat while client-cpu holds, and it says so",
            bool(held) and len(set(held)) == 1,
            f"{len(held)} of {len(samples)} samples held at {sorted(set(held))}",
        )


def grafana_node_query() -> str:
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "s3dlio-ray.json").read_text())
    for panel in dashboard["panels"]:
        for target in panel.get("targets", []):
            if target["expr"].startswith("sum by (node, op) (rate(s3dlio_ray_bytes_total"):
                return target["expr"].replace("$node", ".*").replace("$__rate_interval", "5s")
    raise RuntimeError("the dashboard lost its per-node rate panel")


PROMETHEUS_CONFIG = """global: {scrape_interval: 1s}
scrape_configs:
  - job_name: s3dlio-ray
    static_configs: [{targets: ["127.0.0.1:9477"]}]
"""

QUERY = """import json, sys, urllib.request
print(urllib.request.urlopen(sys.argv[1], timeout=10).read().decode())
"""


def scenario_metrics(args: argparse.Namespace) -> None:
    nic = parse_rate("100mbit") / 8
    with (
        lab("--hosts", "3", "--nic-rate", "100mbit", "--store", "null"),
        tempfile.TemporaryDirectory() as folder,
    ):
        config = Path(folder) / "prometheus.yml"
        config.write_text(PROMETHEUS_CONFIG)
        prometheus = subprocess.Popen(
            [
                *CLI,
                "lab",
                "--name",
                NAME,
                "exec",
                "--",
                "prometheus",
                f"--config.file={config}",
                f"--storage.tsdb.path={folder}/tsdb",
                "--web.listen-address=127.0.0.1:9090",
            ],
            cwd=ROOT,
            env=environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        time.sleep(5)
        started = time.time()
        result = run(timed(args.seconds, "4MiB", "put", metrics_port=9477, metrics_linger_s=3))
        ended = time.time()
        query = urllib.parse.urlencode(
            {"query": grafana_node_query(), "start": started + 4, "end": ended - 4, "step": 1}
        )
        done = lab_command(
            "exec",
            "--",
            sys.executable,
            "-c",
            QUERY,
            f"http://127.0.0.1:9090/api/v1/query_range?{query}",
        )
        prometheus.terminate()
    series = json.loads(done.stdout)["data"]["result"]
    _, nodes, _ = steady(result, "put")
    for item in series:
        node = item["metric"]["node"]
        value = statistics.median(float(v) for _, v in item["values"])
        print(f"  node {node}: Prometheus {mb(value)}, the result {mb(nodes[node])}, NIC {mb(nic)}")
        claim(
            f"Grafana's per-node rate for {node} within 20 % of its NIC",
            abs(value / nic - 1) <= 0.2,
            f"{value / nic:.2f}",
        )
    claim("a series for every node", len(series) == 3, f"{len(series)} series")


SCENARIOS: dict[str, Callable[[argparse.Namespace], None]] = {
    "nic": scenario_nic,
    "nics": scenario_nics,
    "gateways": scenario_gateways,
    "loss": scenario_loss,
    "controller": scenario_controller,
    "delay": scenario_delay,
    "limits": scenario_limits,
    "metrics": scenario_metrics,
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SCENARIOS), help="scenarios, comma-separated")
    parser.add_argument("--rate", default="200mbit", help="each client NIC's rate")
    parser.add_argument("--gateway-rate", default="100mbit", help="each RGW gateway's NIC rate")
    parser.add_argument("--seconds", type=int, default=15, help="each timed phase")
    args = parser.parse_args()
    if os.geteuid() != 0:
        sys.exit("bench_lab: the lab needs root")
    for name in args.only.split(","):
        started = time.monotonic()
        print(f"\n## {name}", flush=True)
        SCENARIOS[name](args)
        print(f"({name}: {time.monotonic() - started:.0f} s)", flush=True)
    print("\nclaims:")
    for text, holds, figures in CLAIMS:
        print(f"  {'PASS' if holds else 'FAIL'}: {text} ({figures})")


if __name__ == "__main__":
    main()

"""CPU per small request of the engine: PUT and GET of 4 KiB objects at concurrency 16, one
process, verification off, against the null endpoint given as the first argument.

    TREE=/path/to/checkout .venv/bin/python benchmarks/bench_request_cost.py http://127.0.0.1:PORT \
        [uvloop] [asyncio] [floor] [s3dlio]

`TREE` names the checkout whose s3dlio_ray is measured, so two revisions can be compared in
alternation on one endpoint (see BENCHMARKS.md); `FAST_PATH=off` measures the engine's general
path (a task per request) where the checkout has the small-request path. For each event loop
named (both when none is; uvloop: the one Ray gives the actors when it is installed; asyncio:
the fallback) prints the median over three passes of PUT and of GET of the process's user +
system CPU per request, in microseconds (`uvloop {'put': X, 'get': Y}`), then of HEAD (a STAT
phase: `uvloop head {'head': Z}`). `floor` instead measures the least an asyncio client can
spend on each loop: a protocol that writes one prebuilt, already signed GET and counts the
response's bytes, 16 connections; `s3dlio` measures the s3dlio wheel (its put_many /
get_many_stats, 16 in flight).
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys

import uvloop

sys.path.insert(0, os.environ.get("TREE", os.path.dirname(os.path.dirname(__file__))))

from bench_transfer import cpu_seconds

from s3dlio_ray._internal.execution.engine import Engine
from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec
from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.keys import KeyRange
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.storage.s3.client import ClientOptions, S3Client
from s3dlio_ray._internal.storage.s3.http1 import Http1Transport
from s3dlio_ray._internal.storage.s3.signing import EMPTY_PAYLOAD, Signer, resolve_credentials
from s3dlio_ray._internal.storage.store import S3Store
from s3dlio_ray._internal.tuning.scheduler import ConcurrencyPolicy, Mode

OBJECTS = 5000


def small_object_engine(url: str) -> Engine:
    """One engine on the endpoint at `url`, 16 requests in flight, as both request-cost
    benchmarks measure it."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    signer = Signer(resolve_credentials(), "us-east-1")
    client = S3Client(ClientOptions(endpoints=(Endpoint.parse(url),)), signer)
    policy = ConcurrencyPolicy(Mode.FIXED, 16)
    if os.environ.get("FAST_PATH") == "off":
        store = S3Store(client, 10 * 2**20, fast_path_max=None)
    else:
        store = S3Store(client, 10 * 2**20)
    return Engine(store, lambda phase, overrides: policy)


def cpu_per_request(url: str, loop: asyncio.AbstractEventLoop) -> dict[str, float]:
    """Median microseconds of CPU per request for PUT and GET on `loop`."""
    asyncio.set_event_loop(loop)
    engine = small_object_engine(url)
    keys = KeyRange.of("", "bench", OBJECTS)
    per_request: dict[str, list[float]] = {}
    for phase in (Phase.PUT, Phase.GET, Phase.STAT) * 3:
        spec = PhaseSpec(phase, "bench", ObjectSizes.fixed(4096), 1, verify=False)
        started = cpu_seconds()
        result = loop.run_until_complete(engine.run_share(spec, keys))
        per_request.setdefault(str(phase), []).append(
            (cpu_seconds() - started) / result.stats.ops * 1e6
        )
    loop.run_until_complete(engine.aclose())
    loop.close()
    return {
        "head" if phase == Phase.STAT else phase: round(statistics.median(v), 1)
        for phase, v in per_request.items()
    }


class _Counting(asyncio.Protocol):
    """Counts a response's bytes and wakes the request when they are all in."""

    def __init__(self, expected: int) -> None:
        self.expected = expected
        self.received = 0
        self.done: asyncio.Future[None] | None = None

    def data_received(self, data: bytes) -> None:
        self.received += len(data)
        if self.received >= self.expected and self.done is not None:
            self.done.set_result(None)


async def _bare_gets(url: str) -> float:
    """CPU microseconds per GET of the bare client; median of three passes."""
    host, port = url.removeprefix("http://").split(":")
    engine = small_object_engine(url)
    target = "/bench/00000001"
    headers = engine.store.client._signer.sign("GET", f"{host}:{port}", target, {}, EMPTY_PAYLOAD)
    request = Http1Transport(host, int(port))._head("GET", target, headers, 0)
    loop = asyncio.get_running_loop()
    reply = await asyncio.open_connection(host, int(port))
    reply[1].write(request)
    response = await reply[0].readuntil(b"\r\n\r\n")
    expected = len(response) + 4096
    reply[1].close()

    async def one_connection(requests: int) -> None:
        transport, protocol = await loop.create_connection(
            lambda: _Counting(expected), host, int(port)
        )
        for _ in range(requests):
            protocol.received, protocol.done = 0, loop.create_future()
            transport.write(request)
            await protocol.done
        transport.close()

    passes = []
    for _ in range(3):
        started = cpu_seconds()
        await asyncio.gather(*(one_connection(OBJECTS // 16) for _ in range(16)))
        passes.append((cpu_seconds() - started) / (OBJECTS // 16 * 16) * 1e6)
    return round(statistics.median(passes), 1)


def s3dlio_per_request(url: str) -> dict[str, float]:
    import s3dlio

    s3dlio.configure_s3(endpoint_url=url, region="us-east-1")
    uris = [f"s3://bench/{key}" for key in KeyRange.of("", "bench", OBJECTS)]
    payload = bytes(4096)
    per_request: dict[str, list[float]] = {"put": [], "get": []}
    for _ in range(3):
        started = cpu_seconds()
        s3dlio.put_many([(uri, payload) for uri in uris], max_in_flight=16)
        put_done = cpu_seconds()
        s3dlio.get_many_stats(uris, max_in_flight=16)
        per_request["put"].append((put_done - started) / OBJECTS * 1e6)
        per_request["get"].append((cpu_seconds() - put_done) / OBJECTS * 1e6)
    return {op: round(statistics.median(v), 1) for op, v in per_request.items()}


LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def main() -> None:
    url = sys.argv[1]
    for name in sys.argv[2:] or LOOPS:
        if name == "floor":
            for loop_name, make in LOOPS.items():
                print(f"floor {loop_name}", {"get": make().run_until_complete(_bare_gets(url))})
        elif name == "s3dlio":
            print("s3dlio", s3dlio_per_request(url))
        else:
            costs = cpu_per_request(url, LOOPS[name]())
            print(name, {"put": costs["put"], "get": costs["get"]})
            print(name, "head", {"head": costs["head"]})


if __name__ == "__main__":
    main()

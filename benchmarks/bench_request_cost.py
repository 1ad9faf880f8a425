"""CPU per small request of the engine: PUT and GET of 4 KiB objects at concurrency 16, one
process, verification off, against the null endpoint given as the first argument.

    TREE=/path/to/checkout .venv/bin/python benchmarks/bench_request_cost.py http://127.0.0.1:PORT \
        [uvloop] [asyncio]

`TREE` names the checkout whose s3dlio_ray is measured, so two revisions can be compared in
alternation on one endpoint (see BENCHMARKS.md). For each event loop named (both when none is;
uvloop: the one Ray gives the actors when it is installed; asyncio: the fallback) prints the
median over three passes of PUT and of GET of the process's user + system CPU per request, in
microseconds.
"""

from __future__ import annotations

import asyncio
import inspect
import os
import statistics
import sys

import uvloop

sys.path.insert(0, os.environ.get("TREE", os.path.dirname(os.path.dirname(__file__))))

from bench_transfer import cpu_seconds

from s3dlio_ray.engine import Engine
from s3dlio_ray.keys import KeyRange
from s3dlio_ray.phases.base import PhaseSpec
from s3dlio_ray.results import Phase
from s3dlio_ray.s3.client import ClientOptions, S3Client
from s3dlio_ray.s3.signing import Signer, resolve_credentials
from s3dlio_ray.sizes import ObjectSizes
from s3dlio_ray.store import S3Store
from s3dlio_ray.tuning.scheduler import ConcurrencyPolicy, Mode

OBJECTS = 5000


def small_object_engine(url: str) -> Engine:
    """One engine on the endpoint at `url`, 16 requests in flight, as both request-cost
    benchmarks measure it."""
    os.environ.setdefault("AWS_ACCESS_KEY_ID", "bench")
    os.environ.setdefault("AWS_SECRET_ACCESS_KEY", "bench")
    signer = Signer(resolve_credentials(), "us-east-1")
    # Revisions before many endpoints (issue 11) name their one endpoint `endpoint`.
    named = "endpoints" in inspect.signature(ClientOptions).parameters
    options = ClientOptions(endpoints=(url,)) if named else ClientOptions(endpoint=url)
    client = S3Client(options, signer)
    policy = ConcurrencyPolicy(Mode.FIXED, 16)
    return Engine(S3Store(client, 10 * 2**20), lambda phase: policy)


def cpu_per_request(url: str, loop: asyncio.AbstractEventLoop) -> dict[str, float]:
    """Median microseconds of CPU per request for PUT and GET on `loop`."""
    asyncio.set_event_loop(loop)
    engine = small_object_engine(url)
    keys = KeyRange.of("", "bench", OBJECTS)
    per_request: dict[str, list[float]] = {}
    for phase in (Phase.PUT, Phase.GET) * 3:
        spec = PhaseSpec(phase, "bench", ObjectSizes.fixed(4096), 1, verify=False)
        started = cpu_seconds()
        result = loop.run_until_complete(engine.run_share(spec, keys))
        per_request.setdefault(str(phase), []).append(
            (cpu_seconds() - started) / result.stats.ops * 1e6
        )
    loop.run_until_complete(engine.aclose())
    loop.close()
    return {phase: round(statistics.median(v), 1) for phase, v in per_request.items()}


LOOPS = {"uvloop": uvloop.new_event_loop, "asyncio": asyncio.new_event_loop}


def main() -> None:
    for name in sys.argv[2:] or LOOPS:
        print(name, cpu_per_request(sys.argv[1], LOOPS[name]()))


if __name__ == "__main__":
    main()

"""What a train phase's machinery costs per sample: the same 4 KiB objects read by a GET phase and
by a train phase of one simulated accelerator with no compute (batches of 16, 16 read threads,
2 batches read ahead), one process, verification off, against the null endpoint serving 4 KiB.

    .venv/bin/python -m s3dlio_ray._internal.lab.null_endpoint --port 9100 --object-size 4KiB &
    .venv/bin/python benchmarks/bench_train.py http://127.0.0.1:9100

Prints, per phase, the median over five alternating passes of the process's user + system CPU
per object in microseconds and of objects per second, and the train/get ratios.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(__file__)))

from bench_request_cost import small_object_engine
from bench_transfer import cpu_seconds

from s3dlio_ray._internal.execution.phases.transfer import PhaseSpec, TrainingSpec
from s3dlio_ray._internal.model.dataset import Dataset
from s3dlio_ray._internal.model.keys import KeyRange
from s3dlio_ray._internal.model.sizes import ObjectSizes
from s3dlio_ray._internal.model.vocabulary import Phase

OBJECTS = 4096
SIZE = 4096


def main() -> None:
    engine = small_object_engine(sys.argv[1])
    sizes = ObjectSizes.fixed(SIZE)
    get = (PhaseSpec(Phase.GET, "bench", sizes, 1, verify=False), KeyRange.of("", "bench", OBJECTS))
    dataset = Dataset("bench/", OBJECTS, 1, SIZE)
    training = TrainingSpec(dataset, 1, 16, 16, 2, 0.0, 1, "1", "1", None)
    train = (PhaseSpec(Phase.TRAIN, "bench", sizes, 1, verify=False, training=training), range(1))
    loop = asyncio.new_event_loop()
    cpu: dict[str, list[float]] = {}
    rate: dict[str, list[float]] = {}
    for spec, keys in [get, train] * 5:
        started, wall = cpu_seconds(), time.perf_counter()
        result = loop.run_until_complete(engine.run_share(spec, keys))
        assert result.stats.ops == OBJECTS and not result.stats.errors, result.failed
        name = str(spec.phase)
        cpu.setdefault(name, []).append((cpu_seconds() - started) / OBJECTS * 1e6)
        rate.setdefault(name, []).append(OBJECTS / (time.perf_counter() - wall))
    medians = {name: (statistics.median(cpu[name]), statistics.median(rate[name])) for name in cpu}
    for name, (us, per_s) in medians.items():
        print(f"{name:5s}  CPU {us:6.1f} us/object  {per_s:8.0f} objects/s")
    (get_us, get_rate), (train_us, train_rate) = medians["get"], medians["train"]
    print(f"train/get: CPU {train_us / get_us:.2f}x, rate {train_rate / get_rate:.2f}x")


if __name__ == "__main__":
    main()

"""The machine's floors: measured once in under a second, then read from the cache; a phase's
client cost set beside them says what a node could do at most."""

from __future__ import annotations

import json
import time

import pytest

from s3dlio_ray._internal.model.resources import ClientCost, MachineFloors
from s3dlio_ray._internal.storage.floors import AEADS, aead_gbps, first_suite, machine_floors


def test_floors_are_measured_once_then_read_from_the_cache(tmp_path):
    cache = tmp_path / "floors.json"
    began = time.perf_counter()
    floors = machine_floors(cache)
    measured_s = time.perf_counter() - began
    assert floors is not None and measured_s < 1.5
    assert 0.05 < floors.sha256_gbps < 50
    assert 0.5 < floors.request_us < 10_000
    (entry,) = json.loads(cache.read_text()).values()
    assert MachineFloors(**entry) == floors
    began = time.perf_counter()
    assert machine_floors(cache) == floors
    assert time.perf_counter() - began < 0.1


def test_the_cipher_timed_is_the_suites():
    pytest.importorskip("cryptography", reason="the cipher floor needs cryptography (moto has it)")
    assert aead_gbps("TLS_CHACHA20_POLY1305_SHA256")[1] == "ChaCha20-Poly1305"
    assert aead_gbps("ECDHE-RSA-AES128-GCM-SHA256")[1] == "AES-128-GCM"
    speed, name = aead_gbps()  # the suite this client offers first
    offered = first_suite()
    assert name == next(label for part, (label, _, _) in AEADS.items() if part in offered)
    assert speed is not None and speed > 0.05
    assert aead_gbps("TLS_RC4_SHA") == (None, None)


def test_an_unwritable_cache_gives_no_floors_and_no_error(tmp_path):
    blocked = tmp_path / "file"
    blocked.write_text("")
    assert machine_floors(blocked / "floors.json") is None


def test_the_client_cost_names_the_most_a_node_could_do():
    floors = MachineFloors(1.5, 3.5, "AES-128-GCM", 20.0)
    cost = ClientCost(cpu_s=2.0, bytes=4_000_000_000, requests=1000, capacity_cores=2.0,
                      floors=floors)  # fmt: skip
    assert cost.node_ceiling_gbps == pytest.approx(4.0)
    assert cost.describe() == (
        "client cost 0.50 CPU s/GB, 2000 CPU us/request: a client node (2 cores) can do at "
        "most 4 GB/s of this (a core hashes SHA-256 at 1.50 GB/s, AES-128-GCM 3.50 GB/s, a "
        "bare loopback request 20 us)"
    )
    assert ClientCost.from_dict(cost.to_dict()) == cost

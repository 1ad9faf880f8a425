"""The null endpoint (the benchmarks' and the lab's store that stores nothing) keeps a run's
journal, so a run's bookkeeping works against it as against a store."""

from __future__ import annotations

import asyncio
import socket
import time

import pytest
from conftest import ROOT, TEST_CREDENTIALS

from s3dlio_ray._internal.lab import null_endpoint
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.settings.load import load_settings

pytestmark = pytest.mark.integration


def test_a_timed_put_and_its_cleanup_run_against_the_null_endpoint():
    port, server = null_endpoint.launch("64KiB")
    try:
        deadline = time.monotonic() + 30
        while socket.socket().connect_ex(("127.0.0.1", port)) != 0:
            assert server.poll() is None and time.monotonic() < deadline
            time.sleep(0.1)
        phases = [{"put": {"duration_s": 1}}, {"get": {"verify": False}}, "cleanup"]
        values = {"objects": 8, "object_size": "64KiB", "phases": phases}
        values |= {"executor": "local", "metrics_port": "off"}
        settings = load_settings(ROOT / "configs" / "quick.yaml", values, environ={})
        endpoint = f"http://127.0.0.1:{port}"
        result = asyncio.run(execute(plan_run(settings, (endpoint,), TEST_CREDENTIALS)))
    finally:
        server.terminate()
        server.wait()
    assert result.ok, result.error
    put, get = result.phases[0], result.phases[1]
    assert put.stats.ops >= 8 and get.stats.ops == put.stats.ops
    assert get.stats.bytes == get.stats.ops * 64 * 1024

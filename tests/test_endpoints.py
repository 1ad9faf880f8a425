"""A storage cluster's many gateways and a client's many NICs: requests spread over endpoints,
a dead endpoint's share carried by the others, connections leaving from each actor's own address.

The endpoints are real proxies on different loopback addresses and ports in front of one moto
server; the runs go through the suite's three Ray nodes."""

from __future__ import annotations

import asyncio
import json
import socket
from collections import Counter

import pytest
from conftest import TEST_CREDENTIALS, settings_for, stored_objects, valid_result
from faults import FaultProxy, Rule
from rich.console import Console

from s3dlio_ray._internal.execution.engine import is_fatal
from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import KeyRange, run_prefix
from s3dlio_ray._internal.reports.files import print_summary
from s3dlio_ray._internal.reports.html import render_html
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run
from s3dlio_ray._internal.storage.embedded import free_port
from s3dlio_ray._internal.storage.network import source_address, spread_over_addresses
from s3dlio_ray._internal.storage.s3.client import ClientOptions, S3Client
from s3dlio_ray._internal.storage.s3.errors import S3ConnectionError
from s3dlio_ray._internal.storage.s3.retry import RetryPolicy
from s3dlio_ray._internal.storage.s3.signing import Signer, resolve_credentials
from s3dlio_ray._internal.tuning.endpoints import EndpointPolicy, Rotation

GATEWAYS = ("127.0.0.1", "127.0.0.4", "127.0.0.5")


def test_round_robin_starts_at_the_rank_and_shares_evenly():
    picks = [Rotation(3, offset=rank).pick(0.0) for rank in range(6)]
    assert picks == [0, 1, 2, 0, 1, 2]
    rotation = Rotation(3, offset=1)
    assert Counter(rotation.pick(0.0) for _ in range(300)) == {0: 100, 1: 100, 2: 100}


def test_least_busy_takes_the_endpoint_with_fewest_requests_in_flight():
    rotation = Rotation(3, EndpointPolicy.LEAST_BUSY)
    rotation.in_flight[:] = [4, 1, 3]
    assert rotation.pick(0.0) == 1
    rotation.in_flight[:] = [0, 2, 0]
    assert {rotation.pick(0.0), rotation.pick(0.0)} == {0, 2}


def test_an_endpoint_that_keeps_failing_rests_longer_each_time_and_comes_back():
    rotation = Rotation(2, failures_to_rest=3, rest_s=5.0)
    assert [rotation.failed(1, 10.0) for _ in range(3)] == [None, None, 5.0]
    assert {rotation.pick(11.0) for _ in range(10)} == {0}
    assert rotation.pick(15.5) in (0, 1) and rotation.resting(1, 14.9)
    assert [rotation.failed(1, 16.0) for _ in range(3)][-1] == 10.0
    rotation.failed(0, 16.0), rotation.failed(0, 16.0), rotation.failed(0, 16.0)
    assert rotation.pick(17.0) is None and rotation.next_return() == 21.0
    rotation.succeeded(1)
    assert rotation.pick(30.0, avoid=0) == 1


def test_a_single_endpoint_never_rests():
    rotation = Rotation(1)
    assert all(rotation.failed(0, 1.0) is None for _ in range(10))
    assert rotation.pick(2.0) == 0


def test_every_endpoint_down_is_one_fatal_error():
    dead = tuple(Endpoint.parse(f"http://127.0.0.{n}:{free_port()}") for n in (1, 4))
    signer = Signer(resolve_credentials(explicit=TEST_CREDENTIALS), "us-east-1")
    retry = RetryPolicy(max_attempts=10, base_delay_s=0.001)
    client = S3Client(ClientOptions(endpoints=dead, retry=retry), signer)

    async def head():
        try:
            await client.head_object("b", "k")
        finally:
            await client.aclose()

    with pytest.raises(S3ConnectionError, match="all 2 endpoints are failing") as caught:
        asyncio.run(head())
    assert is_fatal(caught.value)


def test_a_host_name_with_several_addresses_becomes_one_endpoint_each(monkeypatch):
    def getaddrinfo(host, port, type=0):
        found = {"gw.example": ["10.0.0.1", "10.0.0.2", "fd00::3"], "one.example": ["10.0.0.9"]}
        return [(socket.AF_INET, type, 6, "", (a, port)) for a in found[host]]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    named = (Endpoint.parse("http://gw.example:9000"), Endpoint.parse("https://one.example"))
    spread = spread_over_addresses(named)
    assert [endpoint.label for endpoint in spread] == [
        "http://10.0.0.1:9000",
        "http://10.0.0.2:9000",
        "http://[fd00::3]:9000",
        "https://one.example:443",
    ]
    # Each is still the endpoint it was named: TLS verifies, and the Host header carries, the
    # name; only the connection goes to the address.
    assert {endpoint.host for endpoint in spread} == {"gw.example", "one.example"}


def test_a_source_address_is_an_address_or_interface_of_this_node():
    assert source_address("127.0.0.2") == "127.0.0.2"
    assert source_address("lo") == "127.0.0.1"
    with pytest.raises(ConfigError, match="has no interface 'nic9'"):
        source_address("nic9")
    with pytest.raises(ConfigError, match=r"192\.0\.2\.1 is not an address of this node"):
        source_address("192.0.2.1")


def _run(settings, urls):
    return asyncio.run(execute(plan_run(settings, urls, TEST_CREDENTIALS)))


def _keys(settings, count):
    return list(KeyRange.of(settings.prefix, settings.run_id, count))


def test_three_gateways_share_every_phase_evenly_and_every_row_shows_them(
    ray_cluster, moto_url, boto3_s3, bucket, tmp_path
):
    count = 90
    settings = settings_for(
        bucket,
        objects=count,
        object_size="64KiB",
        phases="put,get",
        ray_address=ray_cluster.address,
    )
    proxies = [FaultProxy(moto_url, host=host) for host in GATEWAYS]
    with proxies[0], proxies[1], proxies[2]:
        urls = [p.url for p in proxies]
        result = valid_result(_run(settings, urls).to_dict())
        requests = [p.requests for p in proxies]
    put, get = result.phases
    assert result.ok, {str(p.phase): dict(p.failed) for p in result.phases}
    assert put.objects == get.objects == get.verified == count
    assert sorted(
        stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id))
    ) == (_keys(settings, count))
    assert list(result.endpoints) == urls
    for phase in (put, get):
        assert set(phase.endpoints) == set(urls)
        assert sum(s.objects for s in phase.endpoints.values()) == count
        for served in phase.endpoints.values():
            assert abs(served.objects - count / 3) <= 0.1 * count / 3
    total = sum(requests)
    assert all(abs(n - total / 3) <= 0.1 * total / 3 for n in requests), requests
    console = Console(record=True, width=200)
    print_summary(result, console)
    text = console.export_text()
    assert "by endpoint" in text and all(text.count(url) >= 2 for url in urls)
    page = render_html(result)
    assert all(page.count(url) >= 2 for url in urls)


def test_a_gateway_killed_mid_phase_leaves_its_share_to_the_others(
    ray_cluster, moto_url, boto3_s3, bucket
):
    count = 120
    settings = settings_for(
        bucket,
        objects=count,
        object_size="32KiB",
        phases="put,get",
        concurrency=2,
        ray_address=ray_cluster.address,
    )
    kill = Rule("kill", lambda r: r.method == "PUT" and r.of_an_object, nth=5)
    proxies = [FaultProxy(moto_url, host=host) for host in GATEWAYS[:2]]
    proxies.append(FaultProxy(moto_url, [kill], host=GATEWAYS[2]))
    with proxies[0], proxies[1], proxies[2]:
        urls = [p.url for p in proxies]
        result = valid_result(_run(settings, urls).to_dict())
        killed = proxies[2].applied
    put, get = result.phases
    assert killed, "the gateway was never killed"
    assert result.ok, json.dumps(result.to_dict()["phases"][0]["failed"])
    assert put.objects == get.verified == count and not put.failed and not get.failed
    stored = stored_objects(boto3_s3, bucket, run_prefix(settings.prefix, settings.run_id))
    assert sorted(stored) == _keys(settings, count)
    assert put.stats.retries >= 1
    assert get.endpoints.get(urls[2]) is None or get.endpoints[urls[2]].objects == 0
    assert put.endpoints[urls[2]].retries >= 1


def test_each_actor_leaves_from_its_own_source_address_evenly(ray_cluster, moto_url, bucket):
    settings = settings_for(
        bucket,
        objects=60,
        object_size="16KiB",
        phases="put,get",
        concurrency=4,
        actors_per_node=2,
        bind_addresses="127.0.0.2,127.0.0.3",
        ray_address=ray_cluster.address,
    )
    with FaultProxy(moto_url) as recording:
        result = _run(settings, [recording.url])
        peers = Counter(recording.peers)
    assert result.ok
    assert set(peers) <= {"127.0.0.1", "127.0.0.2", "127.0.0.3"}
    from_actors = peers["127.0.0.2"] + peers["127.0.0.3"]
    assert peers["127.0.0.2"] and peers["127.0.0.3"]
    assert abs(peers["127.0.0.2"] - peers["127.0.0.3"]) <= 0.25 * from_actors
    put = result.phases[0]
    assert {where.split()[1] for where in put.addresses} == {"127.0.0.2", "127.0.0.3"}
    assert sum(s.objects for s in put.addresses.values()) == 60
    for node in result.cluster.nodes:
        assert {f"{node} 127.0.0.2", f"{node} 127.0.0.3"} <= set(put.addresses)

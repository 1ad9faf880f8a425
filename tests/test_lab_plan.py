"""The lab's plan: rates as tc writes them, names, addresses, and the subnet check; pure."""

from __future__ import annotations

import ipaddress

import pytest

from s3dlio_ray._internal.lab.command import describe
from s3dlio_ray._internal.lab.plan import Lab, StoreKind, overlapping, parse_rate, tbf_burst_bytes
from s3dlio_ray._internal.model.errors import ConfigError


def lab(**changes) -> Lab:
    values = {"name": "lab", "hosts": 3, "nics": 1, "nic_rate": "100mbit", "gateways": 1}
    values |= {"store": StoreKind.MOTO, "store_rate": None, "delay_ms": 0.0, "cpus": 1}
    values |= {"subnet": "10.250.0.0/24", **changes}
    return Lab(**values)


@pytest.mark.parametrize(
    ("text", "bits"),
    [
        ("100mbit", 100e6),
        ("1gbit", 1e9),
        ("2.5gbit", 2.5e9),
        ("500kbit", 500e3),
        ("12mbps", 96e6),
        ("1GBIT", 1e9),
        ("100000bit", 1e5),
    ],
)
def test_rates_read_as_tc_reads_them(text, bits):
    assert parse_rate(text) == bits


@pytest.mark.parametrize("text", ["100", "100mb", "fast", "-1mbit", "1 gbit x", "99kbit"])
def test_a_rate_tc_would_not_take_is_one_clear_error(text):
    with pytest.raises(ConfigError, match="rate"):
        parse_rate(text)


def test_the_token_bucket_holds_an_offloaded_packet_and_a_timer_tick_of_the_rate():
    assert tbf_burst_bytes(100e6) == 256 * 1024
    assert tbf_burst_bytes(10e9) == int(10e9 / 8 * 0.004)


def test_every_nic_has_its_own_address_in_the_subnet_and_its_rate():
    plan = lab(hosts=2, nics=2, gateways=3, store_rate="1gbit")
    nics = plan.all_nics
    addresses = [n.address for n in nics]
    # the store's core, three gateways, two hosts of two NICs, the gateways' backend NICs
    assert len(set(addresses)) == len(nics) == 1 + 3 + 2 * 2 + 3
    assert all(ipaddress.ip_address(a) in plan.network for a in addresses)
    assert "10.250.0.1" not in addresses  # left free, as a router's address is by habit
    assert [n.rate_bits for n in nics] == [None, *[1e9] * 3, *[100e6] * 4, None, None, None]
    assert [n.device for n in nics if n.namespace == plan.gateway(0)] == ["eth0", "eth1"]
    assert len(lab(store=StoreKind.NULL, gateways=3).all_nics) == 1 + 3 + 3
    assert [n.device for n in nics if n.namespace == plan.host(1)] == ["eth0", "eth1"]
    assert len({n.peer for n in nics}) == len(nics)
    assert plan.endpoints == [f"http://10.250.0.{i}:80" for i in (3, 4, 5)]
    assert plan.ray_address == "10.250.0.6:6379"
    assert plan.namespaces == [
        "s3lab-lab-sw", "s3lab-lab-st", "s3lab-lab-g1", "s3lab-lab-g2", "s3lab-lab-g3",
        "s3lab-lab-h1", "s3lab-lab-h2",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("changes", "says"),
    [
        ({"name": "Lab"}, "lab name"),
        ({"name": "a-b"}, "lab name"),
        ({"hosts": 0}, "--hosts 0"),
        ({"nics": 5}, "--nics 5"),
        ({"gateways": 9}, "--gateways 9"),
        ({"delay_ms": -1}, "--delay-ms"),
        ({"nic_rate": "fast"}, "rate 'fast'"),
        ({"store_rate": "1g"}, "rate '1g'"),
        ({"subnet": "8.8.8.0/24"}, "private IPv4"),
        ({"subnet": "10.250.0.1/24"}, "host bits"),
        ({"subnet": "10.250.0.0/29", "hosts": 8}, "too few addresses"),
    ],
)
def test_a_lab_that_cannot_be_made_is_refused_before_anything_is(changes, says):
    with pytest.raises(ConfigError, match=says):
        lab(**changes)


def test_a_subnet_in_use_on_the_machine_is_found():
    in_use = ["127.0.0.1/8", "192.0.2.2/24", "10.250.0.7/16", "fe80::1/64"]
    assert overlapping("10.250.0.0/24", in_use) == "10.250.0.7/16"
    assert overlapping("10.251.0.0/24", ["127.0.0.1/8", "192.0.2.0/24"]) is None


def test_the_map_names_every_namespace_address_and_rate():
    plan = lab(store=StoreKind.RGW, gateways=2, store_rate="1gbit", delay_ms=20)
    text = describe(plan)
    for nic in plan.all_nics:
        assert nic.namespace in text and nic.address in text
    assert "+20 ms at each gateway" in text and "RADOS" in text and "Ray head" in text
    assert len(text.splitlines()) == 2 + len(plan.all_nics)

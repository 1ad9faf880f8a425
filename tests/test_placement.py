"""Where actors go: every key sharded exactly once, one actor per free CPU on alive nodes."""

import pytest

from s3dlio_ray._internal.cluster.driver import node_labels, nodes_elsewhere, plan_slots
from s3dlio_ray._internal.model.sharding import shard


@pytest.mark.parametrize(("count", "parts"), [(0, 3), (1, 3), (10, 3), (100, 7), (5, 5)])
def test_shards_cover_every_key_exactly_once(count, parts):
    keys = [f"k{i}" for i in range(count)]
    shares = shard(keys, parts)
    assert len(shares) == parts
    assert [k for share in shares for k in share] == keys
    assert max(map(len, shares)) - min(map(len, shares)) <= 1


def node(node_id, ip, cpus, alive=True):
    return {"NodeID": node_id, "NodeManagerAddress": ip, "Alive": alive, "Resources": {"CPU": cpus}}


def test_labels_are_ips_made_unique_when_they_repeat():
    labels = node_labels(
        [
            node("aaaaaaaa", "10.0.0.1", 2),
            node("bbbbbbbb", "127.0.0.1", 1),
            node("cccccccc", "127.0.0.1", 1),
        ]
    )
    assert labels == {
        "aaaaaaaa": "10.0.0.1",
        "bbbbbbbb": "127.0.0.1-bbbbbb",
        "cccccccc": "127.0.0.1-cccccc",
    }


def test_slots_one_actor_per_cpu_on_alive_nodes():
    nodes = [
        node("a", "10.0.0.1", 4),
        node("b", "10.0.0.2", 2),
        node("c", "10.0.0.3", 8, False),
        node("d", "10.0.0.4", 0),
    ]
    slots = plan_slots(nodes, None)
    assert [(s.label, s.cpus, s.actors, s.cpus_each) for s in slots] == [
        ("10.0.0.1", 4, 4, 1.0),
        ("10.0.0.2", 2, 2, 1.0),
    ]
    slots = plan_slots(nodes, 8)
    assert [(s.actors, s.cpus_each) for s in slots] == [(8, 0.5), (8, 0.25)]


def test_slots_are_sized_from_free_cpus_when_a_program_holds_some():
    nodes = [node("a", "10.0.0.1", 4), node("b", "10.0.0.2", 2)]
    slots = plan_slots(nodes, None, {"a": 1.5, "b": 0.0})
    assert [(s.label, s.cpus, s.actors, s.cpus_each) for s in slots] == [("10.0.0.1", 1.5, 1, 1.0)]
    slots = plan_slots(nodes, 3, {"a": 1.5, "b": 2.0})
    assert [(s.actors, s.cpus_each) for s in slots] == [(3, 0.5), (3, 2 / 3)]


def test_nodes_on_other_machines_are_told_apart_from_this_ones():
    nodes = [node("a", "10.0.0.1", 1), node("b", "10.0.0.2", 1), node("c", "127.0.0.1", 1)]
    slots = plan_slots(nodes, None)
    assert nodes_elsewhere(nodes, slots, "10.0.0.1") == ["10.0.0.2"]
    assert nodes_elsewhere(nodes[::2], plan_slots(nodes[::2], None), "10.0.0.1") == []

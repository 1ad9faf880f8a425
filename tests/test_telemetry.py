"""The driver's live view: totals that only grow, whatever order snapshots arrive in."""

import pytest
from conftest import recorded

from s3dlio_ray._internal.execution.engine import EngineSnapshot
from s3dlio_ray._internal.live.telemetry import LiveTotals, Telemetry
from s3dlio_ray._internal.model.vocabulary import Phase


class _Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_live_totals_add_only_what_is_new_and_never_go_back():
    totals = LiveTotals()
    totals.observe(1, "n1", EngineSnapshot("put", recorded(2, 200), 8, 3))
    totals.observe(1, "n1", EngineSnapshot("put", recorded(5, 500), 8, 4))
    totals.observe(1, "n1", EngineSnapshot("put", recorded(3, 300), 8, 4))  # late, stale reply
    assert totals.totals[("n1", "put")].ops == 5
    assert totals.concurrency() == {"n1": (8, 4)}
    totals.finish(1, "n1", "put", recorded(7, 700), {})
    totals.observe(1, "n1", EngineSnapshot("put", recorded(6, 600), 8, 1))  # after finish: ignored
    assert totals.totals[("n1", "put")].ops == 7
    assert totals.totals[("n1", "put")].latency.count == 7
    totals.observe(2, "n2", EngineSnapshot("put", recorded(4, 400), 8, 8))
    totals.abandon(2)  # its actor died: what it did stays counted
    totals.observe(3, "n1", EngineSnapshot("put", recorded(1, 100), 8, 1))  # the share, redone
    assert totals.totals[("n2", "put")].ops == 4
    assert totals.totals[("n1", "put")].ops == 8
    assert "n2" not in totals.concurrency()


def test_samples_make_one_row_per_node_that_add_up_to_the_totals():
    clock = _Clock()
    telemetry = Telemetry(clock)
    telemetry.totals.observe(1, "n1", EngineSnapshot(Phase.GET, recorded(2, 200), 8, 3))
    telemetry.totals.observe(2, "n2", EngineSnapshot(Phase.GET, recorded(1, 100), 4, 1))
    clock.now += 1.0
    telemetry.sample(Phase.GET)
    telemetry.totals.finish(1, "n1", Phase.GET, recorded(5, 500), {})
    telemetry.totals.finish(2, "n2", Phase.GET, recorded(1, 100), {})
    clock.now += 1.0
    telemetry.sample(Phase.GET, final=True)
    rows = telemetry.series
    assert {row.node for row in rows} == {"n1", "n2"}
    assert sum(row.bytes for row in rows if row.node == "n1") == 500
    assert sum(row.ops for row in rows) == 6
    assert [row.concurrency for row in rows[:2]] == [8, 4]
    progress = telemetry.progress(Phase.GET, ["n1", "n2"])
    assert (progress.done, progress.errors) == (6, 0)


def test_a_short_final_interval_joins_the_row_before_it_instead_of_spiking():
    clock = _Clock()
    telemetry = Telemetry(clock)
    telemetry.begin(Phase.PUT)
    telemetry.totals.observe(1, "n1", EngineSnapshot(Phase.PUT, recorded(10, 1_000_000), 8, 8))
    clock.now += 1.0
    telemetry.sample(Phase.PUT)
    telemetry.totals.finish(1, "n1", Phase.PUT, recorded(12, 1_200_000), {})
    clock.now += 0.002
    telemetry.sample(Phase.PUT, final=True)
    [row] = telemetry.series
    assert (row.bytes, row.ops, row.interval_s) == (1_200_000, 12, pytest.approx(1.002))
    assert row.gbps == pytest.approx(1_200_000 / 1.002 / 1e9)
    assert (row.concurrency, row.in_flight) == (8, 8), "the last tick's, not the finished zero"


def test_a_long_final_interval_is_its_own_row_and_keeps_the_concurrency_it_ran_at():
    clock = _Clock()
    telemetry = Telemetry(clock)
    clock.now += 30.0  # a pause between phases: not the phase's time
    telemetry.begin(Phase.GET)
    telemetry.totals.observe(1, "n1", EngineSnapshot(Phase.GET, recorded(4, 400), 16, 12))
    clock.now += 1.0
    telemetry.sample(Phase.GET)
    telemetry.totals.finish(1, "n1", Phase.GET, recorded(7, 700), {})
    clock.now += 0.7
    telemetry.sample(Phase.GET, final=True)
    first, last = telemetry.series
    assert (first.interval_s, first.gbps) == (pytest.approx(1.0), pytest.approx(400 / 1e9))
    assert (last.interval_s, last.bytes) == (pytest.approx(0.7), 300)
    assert last.concurrency == 16 and last.phase == "get"


def test_a_mixed_phase_has_a_row_per_operation_beside_the_phase_row():
    clock = _Clock()
    telemetry = Telemetry(clock)
    telemetry.begin(Phase.MIXED)
    by_op = {"get": recorded(3, 300), "put": recorded(1, 100)}
    snapshot = EngineSnapshot(Phase.MIXED, recorded(4, 400), 8, 2, by_op=by_op)
    telemetry.totals.observe(1, "n1", snapshot)
    clock.now += 1.0
    telemetry.sample(Phase.MIXED)
    rows = {row.op: row for row in telemetry.series}
    assert set(rows) == {"mixed", "get", "put"}
    assert all(row.phase == "mixed" for row in rows.values())
    assert rows["get"].bytes + rows["put"].bytes == rows["mixed"].bytes == 400


def test_a_phase_too_short_for_a_tick_shows_the_concurrency_its_shares_ran_at():
    clock = _Clock()
    telemetry = Telemetry(clock)
    telemetry.begin(Phase.GET)
    telemetry.totals.finish(1, "n1", Phase.GET, recorded(3, 300), {}, concurrency=(16, 12))
    telemetry.totals.finish(2, "n1", Phase.GET, recorded(3, 300), {}, concurrency=(16, 9))
    clock.now += 0.3
    telemetry.sample(Phase.GET, final=True)
    [row] = telemetry.series
    assert (row.concurrency, row.in_flight, row.interval_s) == (32, 21, pytest.approx(0.3))


def test_a_tick_that_comes_right_after_a_slow_one_is_left_for_the_next_row():
    clock = _Clock()
    telemetry = Telemetry(clock)
    telemetry.begin(Phase.GET)
    telemetry.totals.observe(1, "n1", EngineSnapshot(Phase.GET, recorded(1, 100), 8, 8))
    clock.now += 2.2  # a slow gather
    telemetry.sample(Phase.GET)
    telemetry.totals.observe(1, "n1", EngineSnapshot(Phase.GET, recorded(2, 200), 8, 8))
    clock.now += 0.1
    assert telemetry.sample(Phase.GET) is None
    clock.now += 0.9
    assert telemetry.sample(Phase.GET) == pytest.approx(100 / 1.0)
    assert [(row.bytes, round(row.interval_s, 3)) for row in telemetry.series] == [
        (100, 2.2),
        (100, 1.0),
    ]


def test_the_live_limit_sets_the_tools_own_cap_beside_the_last_minute():
    """The progress line and the metrics say `target` while the phase runs at its target."""
    from s3dlio_ray._internal.model.bottleneck import Cap
    from s3dlio_ray._internal.model.vocabulary import Limit

    clock = _Clock()
    telemetry = Telemetry(clock)

    def four_seconds(task_id: int, first: int) -> None:
        """One share doing 10 requests and 1000 bytes a second, 8 in flight of 8."""
        for second in range(first, first + 4):
            clock.now += 1.0
            done = recorded(10 * second, 1000 * second)
            telemetry.totals.observe(task_id, "n1", EngineSnapshot(Phase.GET, done, 8, 8))
            telemetry.sample(Phase.GET)

    telemetry.begin(Phase.GET, [Cap(Limit.TARGET, 1000.0)])
    four_seconds(1, 1)
    assert telemetry.verdict is not None and telemetry.verdict.cluster.kind == Limit.TARGET
    assert telemetry.progress(Phase.GET, ["n1"]).limit_kind == "target"
    telemetry.begin(Phase.GET, [Cap(Limit.TARGET, 100_000.0)])  # far above: not the limit
    four_seconds(2, 5)
    assert telemetry.verdict is not None and telemetry.verdict.cluster.kind == Limit.SERVER

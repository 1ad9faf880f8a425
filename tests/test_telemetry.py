"""The driver's live view: totals that only grow, whatever order snapshots arrive in."""

from conftest import recorded

from s3dlio_ray._internal.execution.engine import EngineSnapshot
from s3dlio_ray._internal.live.telemetry import LiveTotals, Telemetry
from s3dlio_ray._internal.model.vocabulary import Phase


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
    telemetry = Telemetry()
    telemetry.totals.observe(1, "n1", EngineSnapshot(Phase.GET, recorded(2, 200), 8, 3))
    telemetry.totals.observe(2, "n2", EngineSnapshot(Phase.GET, recorded(1, 100), 4, 1))
    telemetry.sample(Phase.GET)
    telemetry.totals.finish(1, "n1", Phase.GET, recorded(5, 500), {})
    telemetry.totals.finish(2, "n2", Phase.GET, recorded(1, 100), {})
    telemetry.sample(Phase.GET)
    rows = telemetry.series
    assert {row.node for row in rows} == {"n1", "n2"}
    assert sum(row.bytes for row in rows if row.node == "n1") == 500
    assert sum(row.ops for row in rows) == 6
    assert [row.concurrency for row in rows[:2]] == [8, 4]
    progress = telemetry.progress(Phase.GET, ["n1", "n2"])
    assert (progress.done, progress.errors) == (6, 0)

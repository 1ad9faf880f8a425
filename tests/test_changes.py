"""Changes to a running run's settings: which are taken, which refused, and what they change."""

from __future__ import annotations

import asyncio
import stat
import statistics
import threading
import time

import pytest
from conftest import ROOT

import s3dlio_ray
from s3dlio_ray._internal.execution.admission import ActiveClock, Admission, ShareLimits
from s3dlio_ray._internal.live.control_channel import registry_dir
from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.utilization import AcceleratorClock
from s3dlio_ray._internal.model.vocabulary import EndedBy
from s3dlio_ray._internal.settings.changes import Overrides
from s3dlio_ray._internal.settings.load import load_settings
from s3dlio_ray._internal.tuning.pacing import RateLimit


def settings(**values):
    return load_settings(ROOT / "configs" / "quick.yaml", values, environ={})


def test_changes_merge_count_and_say_what_they_changed():
    started = settings(target_gbps=2)
    first, changed = Overrides().change(started, {"target_gbps": "0.5", "max_concurrency": 64})
    assert changed == {"target_gbps": 0.5, "max_concurrency": 64}
    second, changed = first.change(started, {"paused": True, "rate_limit": "100 MiB/s"})
    assert changed == {"paused": True, "rate_limit": RateLimit("bytes", 100 * 2**20).describe()}
    assert second.version == 2 and second.paused
    now = second.onto(started)
    assert (now.target_gbps, now.max_concurrency) == (0.5, 64)
    assert second.rate_limit(None) == RateLimit("bytes", 100 * 2**20)
    third, changed = second.change(started, {"rate_limit": None, "paused": False})
    assert third.rate_limit(RateLimit("ops", 5)) is None
    assert changed == {"rate_limit": None, "paused": False}


def test_a_change_to_what_is_already_set_changes_nothing():
    started = settings(target_gbps=2)
    _, changed = Overrides().change(started, {"target_gbps": 2, "paused": False})
    assert changed == {}


@pytest.mark.parametrize(
    ("started", "request_", "says"),
    [
        ({}, {"target_gbps": "fast"}, "target_gbps"),
        ({}, {"min_concurrency": 300}, "must not exceed max_concurrency"),
        ({}, {"objects": 5}, "objects cannot change while a run goes"),
        ({}, {"paused": "yes"}, "paused: expected true or false"),
        ({}, {}, "nothing to change"),
        ({}, {"cluster_target_gbps": 1}, "the controller is chosen when a run starts"),
        ({"cluster_target_gbps": 1}, {"target_gbps": 1}, "target_gbps is each actor's own"),
        ({"cluster_target_gbps": 1}, {"concurrency": 32}, "a fixed concurrency"),
        ({"client": "boto3"}, {"concurrency": 32}, "boto3 baseline's thread pool"),
    ],
)
def test_a_change_the_run_cannot_take_is_refused_in_one_line(started, request_, says):
    before = Overrides()
    with pytest.raises(ConfigError, match=says) as refused:
        before.change(settings(**started), request_)
    assert "\n" not in str(refused.value)


def test_a_paused_clock_stands_still_and_counts_on_after_resume():
    clock = ActiveClock()
    time.sleep(0.05)
    clock.pause(True)
    paused_at = clock()
    time.sleep(0.1)
    assert clock() == pytest.approx(paused_at, abs=0.005)
    clock.pause(False)
    time.sleep(0.05)
    assert clock() - paused_at == pytest.approx(0.05, abs=0.03)


def test_a_paused_phase_admits_nothing_and_its_duration_waits():
    async def main():
        paused = Overrides((), True, 1)
        admission = Admission(ShareLimits(0.3, None, paused), lambda item: 1)
        started: list[float] = []

        async def start(item, due):
            started.append(time.perf_counter())

        async def slot():
            await asyncio.sleep(0.01)

        async def resume_later():
            await asyncio.sleep(0.4)
            admission.adjust(ShareLimits(0.3, None, Overrides((), False, 2)))

        began = time.perf_counter()
        resumer = asyncio.ensure_future(resume_later())
        _, ended_by = await admission.run((i for i in range(10**9)), slot, lambda: None, start)
        await resumer
        return began, started, ended_by, time.perf_counter() - began

    began, started, ended_by, wall = asyncio.run(main())
    assert started and started[0] - began >= 0.39
    assert ended_by == EndedBy.DURATION
    # The 0.3 s of the phase are the time after the resume: it started operations throughout.
    assert wall >= 0.65 and started[-1] - started[0] == pytest.approx(0.3, abs=0.05)


def test_a_stop_ends_a_wait_for_the_rate_limit_at_once():
    """A 10 MiB object under a 1 MiB/s cap waits 10 s to start; a stop (SIGTERM) must not
    wait with it: the grace after a stop is five seconds whatever the limiter holds."""

    async def main():
        admission = Admission(ShareLimits(None, RateLimit("bytes", 1 << 20)), lambda item: 10 << 20)

        async def slot():
            pass

        async def stop_later():
            await asyncio.sleep(0.3)
            admission.stop(EndedBy.INTERRUPTED)

        stopper = asyncio.ensure_future(stop_later())
        started = time.perf_counter()
        result = await admission.run(
            range(5), slot, lambda: None, lambda item, due: asyncio.sleep(0)
        )
        await stopper
        return result, time.perf_counter() - started

    (dispatched, ended_by), took = asyncio.run(main())
    assert ended_by == EndedBy.INTERRUPTED and dispatched <= 1 and took < 3


def test_a_stop_ends_a_paused_phase():
    async def main():
        admission = Admission(ShareLimits(None, None, Overrides((), True, 1)), lambda item: 1)

        async def slot():
            pass

        async def stop_later():
            await asyncio.sleep(0.1)
            admission.stop(EndedBy.INTERRUPTED)

        stopper = asyncio.ensure_future(stop_later())
        result = await asyncio.wait_for(
            admission.run(range(5), slot, lambda: None, lambda item, due: asyncio.sleep(0)), 2
        )
        await stopper
        return result

    assert asyncio.run(main()) == (0, EndedBy.INTERRUPTED)


def test_a_local_run_takes_a_fixed_concurrency_and_a_rate_limit_while_it_goes(
    moto_url, bucket, credentials, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    going = threading.Event()
    handle = s3dlio_ray.start(
        ROOT / "configs" / "quick.yaml",
        hooks=s3dlio_ray.Hooks(progress=lambda progress: going.set()),
        endpoint=moto_url,
        bucket=bucket,
        executor="local",
        phases="put,cleanup",
        duration_s=10,
        objects=20,
        object_size="16KiB",
        concurrency=2,
        metrics_port="off",
    )
    assert going.wait(30)
    (registered,) = registry_dir().glob("*.json")
    assert stat.S_IMODE(registered.stat().st_mode) == 0o600
    time.sleep(3)
    assert handle.control(concurrency=12)["changed"] == {"concurrency": 12}
    time.sleep(3)
    handle.control(rate_limit="64 KiB/s")
    result = handle.wait(60).result
    assert result.ok, result.error
    assert not registered.exists()
    raised, capped = (event.t_s for event in result.events)
    rows = [row for row in result.timeseries if row.op == "put"]
    assert all(row.concurrency == 2 and row.in_flight <= 2 for row in rows if row.t_s <= raised)
    wider = [row for row in rows if raised + 1.5 < row.t_s <= capped]
    assert wider and all(row.concurrency == 12 for row in wider)
    assert max(row.in_flight for row in wider) > 2
    slow = [row.bytes for row in rows if row.t_s > capped + 2]
    assert slow and statistics.mean(slow) <= 2 * 64 * 1024
    assert statistics.mean(row.bytes for row in wider) > 3 * statistics.mean(slow)


def test_paused_time_counts_toward_no_accelerators_utilization():
    now = [100.0]
    clock = ActiveClock(now=lambda: now[0])
    accelerator = AcceleratorClock(0, clock)
    accelerator.begin_epoch(1)
    accelerator.ready()
    now[0] += 0.05
    accelerator.computed(1, 100)
    accelerator.waiting()
    clock.pause(True)  # starved of data while paused: not an I/O stall
    now[0] += 0.2
    clock.pause(False)
    accelerator.ready()
    now[0] += 0.05
    accelerator.computed(1, 100)
    epoch = accelerator.end_epoch()
    # The second step (the first is left out of AU) waited only while paused: none of it.
    assert epoch.counted_s == pytest.approx(0.05) and epoch.compute_s == pytest.approx(0.05)
    assert epoch.wait_s == pytest.approx(0.0) and epoch.au == pytest.approx(1.0)


def test_the_registry_is_private_even_where_it_was_not_and_wants_a_bearer_token(
    tmp_path, monkeypatch
):
    import io
    import json
    from types import SimpleNamespace

    from s3dlio_ray._internal.live.control_channel import control_app, register

    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path))
    folder = registry_dir()
    folder.mkdir(parents=True, mode=0o755)
    folder.chmod(0o755)
    (folder / "r1.json").write_text("{}")
    (folder / "r1.json").chmod(0o644)
    path = register("r1", "127.0.0.1", 9, "the-token")
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    taken = []
    app = control_app(SimpleNamespace(change=lambda c: taken.append(c) or {}), "the-token")
    statuses = []
    for header in ("the-token", "Basic the-token", "Bearer the-token"):
        body = json.dumps({"concurrency": 4}).encode()
        environ = {
            "REQUEST_METHOD": "POST",
            "HTTP_AUTHORIZATION": header,
            "CONTENT_LENGTH": str(len(body)),
            "wsgi.input": io.BytesIO(body),
        }
        app(environ, lambda status, headers: statuses.append(status.split()[0]))
    assert statuses[:2] == ["401", "401"] and statuses[2] != "401"
    assert len(taken) == 1, "only the Bearer request reached the run"

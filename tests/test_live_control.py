"""A running 3-node run changed from outside: its cluster target lowered and raised, paused and
resumed, through `s3dlio-ray control`, the API and the control endpoint; a wrong token and a bad
value refused. A mechanism test with wide margins, not a timing test."""

from __future__ import annotations

import asyncio
import csv
import statistics

import httpx
from conftest import CLI, TEST_CREDENTIALS, drawn, headless, settings_for

from s3dlio_ray._api import RunControl
from s3dlio_ray._internal.live.control_channel import find
from s3dlio_ray._internal.reports.files import write_csv
from s3dlio_ray._internal.reports.html import render_html
from s3dlio_ray._internal.run.launch import execute
from s3dlio_ray._internal.run.plan import plan_run

HIGH_GBPS, LOW_GBPS = 0.004, 0.001


async def cli(*args: str) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        *CLI, "control", *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT
    )
    output, _ = await process.communicate()
    return process.returncode, output.decode()


def test_a_running_cluster_follows_its_target_down_and_up_and_pauses(
    ray_cluster, moto_url, bucket, chromium, tmp_path, monkeypatch
):
    monkeypatch.setenv("XDG_STATE_HOME", str(tmp_path / "state"))
    settings = settings_for(
        bucket,
        phases="put,cleanup",
        objects=40,
        object_size="128KiB",
        duration_s=30,
        cluster_target_gbps=HIGH_GBPS,
        metrics_port=0,
        metrics_linger_s=0,
    )
    run_id = settings.run_id
    seen: dict[str, object] = {}

    async def main():
        control = RunControl()
        going = asyncio.Event()
        run = asyncio.ensure_future(
            execute(
                plan_run(settings, (moto_url,), TEST_CREDENTIALS),
                on_progress=lambda progress: going.set(),
                control=control,
            )
        )
        await asyncio.wait_for(going.wait(), 60)
        await asyncio.sleep(6)
        seen["lowered"] = await cli("--run-id", run_id, "--cluster-target-gbps", str(LOW_GBPS))
        await asyncio.sleep(7)
        control.change(cluster_target_gbps=HIGH_GBPS)
        await asyncio.sleep(6)
        control.change(paused=True)
        await asyncio.sleep(2)
        registration = find(run_id)
        async with httpx.AsyncClient() as client:
            seen["wrong_token"] = await client.post(
                registration.url,
                json={"paused": False},
                headers={"Authorization": "Bearer not-the-token"},
            )
            metrics = registration.url.replace("/control", "/metrics")
            seen["metrics"] = (await client.get(metrics)).text
        seen["bad_value"] = await cli("--run-id", run_id, "--cluster-target-gbps", "fast")
        seen["mode_change"] = await cli("--run-id", run_id, "--target-gbps", "1")
        await asyncio.sleep(2)
        control.change(paused=False)
        return await run

    result = asyncio.run(main())
    assert result.ok, result.error
    assert result.cluster.actors == 3

    code, output = seen["lowered"]
    assert code == 0 and f"run {run_id}: cluster_target_gbps={LOW_GBPS}" in output, output
    assert seen["wrong_token"].status_code == 401
    code, output = seen["bad_value"]
    assert code == 2 and len(output.strip().splitlines()) == 1 and "cluster_target_gbps" in output
    assert "Traceback" not in output
    code, output = seen["mode_change"]
    assert code == 2 and "target_gbps is each actor's own target" in output
    assert [event.changes for event in result.events] == [
        {"cluster_target_gbps": LOW_GBPS},
        {"cluster_target_gbps": HIGH_GBPS},
        {"paused": True},
        {"paused": False},
    ]
    metrics = seen["metrics"]
    assert "s3dlio_ray_config_changes_total 3.0" in metrics
    assert "s3dlio_ray_paused 1.0" in metrics
    assert f's3dlio_ray_target_gbps{{scope="cluster"}} {HIGH_GBPS}' in metrics
    assert not list((tmp_path / "state" / "s3dlio-ray" / "runs").glob("*.json"))

    per_second: dict[float, int] = {}
    for row in result.timeseries:
        if row.op == "put":
            per_second[row.t_s] = per_second.get(row.t_s, 0) + row.bytes
    lowered, raised, paused, resumed = (event.t_s for event in result.events)
    end = max(per_second)

    def rate(after: float, until: float) -> list[float]:
        return [b / 1e6 for t, b in sorted(per_second.items()) if after < t <= until]

    low, high = rate(lowered + 3, raised), rate(raised + 3, paused)
    assert 0.4 <= statistics.mean(low) <= 2.0, low
    assert statistics.mean(high) >= 2.0 and statistics.mean(low) < 0.5 * statistics.mean(high)
    # Each actor has the pause with the driver's next gather (within a second), and what it
    # had in flight finishes: from the row after, nothing.
    assert rate(paused + 3, resumed) and not any(rate(paused + 3, resumed))
    assert statistics.mean(rate(resumed + 2, end - 1)) >= 2.0
    put = result.phase("put")
    assert 28 <= put.elapsed_s <= 33, "paused time counts toward neither duration nor elapsed"
    assert end - result.timeseries[0].t_s >= put.elapsed_s + 3

    rows = list(csv.DictReader(write_csv(result, tmp_path / "series.csv").open()))
    marked = [row["event"] for row in rows if row["event"]]
    assert any("paused=true" in event for event in marked)
    assert any(f"cluster_target_gbps={LOW_GBPS:g}" in event for event in marked)

    page = tmp_path / "report.html"
    page.write_text(render_html(result))
    dom = headless(chromium, tmp_path / "profile", "--dump-dom", page.as_uri()).stdout
    for number in range(1, 5):
        assert drawn(dom, f"throughput-event-{number}") >= 2
        assert drawn(dom, f"concurrency-event-{number}") >= 2
    assert "Changes while the run went" in dom and "paused=true" in dom

"""Comparisons that know their noise: intervals, Welch's t, batch means, on synthetic results
whose answer is known."""

from __future__ import annotations

import dataclasses
import math
import random
import re

import pytest
from conftest import recorded, result_of

from s3dlio_ray._internal.model.noise import (
    batch_means,
    estimate,
    t_quantile,
    welch,
)
from s3dlio_ray._internal.model.results import PhaseResult, SeriesRow, ShareResult
from s3dlio_ray._internal.model.vocabulary import Phase
from s3dlio_ray._internal.reports.compare import Runs, compare, compare_notes, mismatches

# Two-sided 95 % (and 99 %, 90 %) critical values of Student's t, from the published tables.
T_TABLE = [(1, 0.95, 12.706), (2, 0.95, 4.303), (4, 0.95, 2.776), (10, 0.95, 2.228)]
T_TABLE += [(30, 0.95, 2.042), (120, 0.95, 1.980), (10, 0.99, 3.169), (4, 0.90, 2.132)]


@pytest.mark.parametrize("freedom,confidence,table", T_TABLE)
def test_the_t_quantile_matches_the_tables(freedom, confidence, table):
    assert t_quantile(freedom, confidence) == pytest.approx(table, abs=6e-4)


def test_an_interval_from_three_samples_is_the_textbook_one():
    found = estimate([10.0, 11.0, 12.0], "3 repeats")
    # mean 11, sd 1, standard error 1/sqrt(3), t(2) = 4.303
    assert found.mean == 11.0 and found.half_width == pytest.approx(4.303 / math.sqrt(3), 1e-3)
    assert estimate([10.0, 11.0], "2 repeats") is None, "two samples say nothing of spread"


def test_welch_says_within_noise_for_equal_results_and_slower_for_half_the_rate():
    a = estimate([1.00, 1.05, 0.95, 1.02, 0.98], "5 repeats")
    same = estimate([1.01, 0.97, 1.03, 0.99, 1.00], "5 repeats")
    half = estimate([0.50, 0.52, 0.48, 0.51, 0.49], "5 repeats")
    verdict = welch(a, same)
    assert verdict.word == "within noise" and abs(verdict.difference) <= verdict.half_width
    assert welch(a, half).word == "slower" and welch(half, a).word == "faster"
    assert welch(a, half, higher_is_better=False).word == "faster", "latency: lower is better"


def test_welch_interval_is_the_textbook_one():
    a = estimate([10.0, 11.0, 12.0], "3 repeats")
    b = estimate([10.0, 11.0, 12.0], "3 repeats")
    # equal variances and counts: df = 4, error = sqrt(1/3 + 1/3)
    assert welch(a, b).half_width == pytest.approx(2.776 * math.sqrt(2 / 3), 1e-3)


def test_batch_means_average_consecutive_seconds_and_drop_a_short_tail():
    intervals = [(1.0, float(i)) for i in range(12)]  # 12 seconds, rates 0..11
    assert batch_means(intervals, 5.0) == [2.0, 7.0]  # 10, 11: 2 s, under half a batch
    assert batch_means([(1.0, 1.0)] * 13, 5.0) == [1.0, 1.0, 1.0]


def _steady(rate: float, seconds: int, seed: int, phase: str = "get", size: str = "10MiB"):
    """A result whose phase moved `rate` bytes/s with 5 % noise every second."""
    rng = random.Random(seed)
    rows = []
    for second in range(1, seconds + 1):
        moved = int(rate * (1 + rng.gauss(0, 0.05)))
        rows.append(
            SeriesRow(
                time=1e9 + second,
                t_s=float(second),
                node="n1",
                op=phase,
                bytes=moved,
                ops=moved // 10_000,
                errors=0,
                gbps=moved / 1e9,
                concurrency=8,
                in_flight=8,
                phase=phase,
                interval_s=1.0,
            )
        )
    total = sum(r.bytes for r in rows)
    share = ShareResult(Phase(phase), float(seconds), recorded(seconds, total))
    result = result_of(PhaseResult.merge(Phase(phase), float(seconds), [("a", "n1", share)], {}))
    return dataclasses.replace(
        result, timeseries=tuple(rows), settings={"object_size": size, "phases": [phase]}
    )


def _gbps(a, b):
    return next(d for d in compare(a, b) if d.metric == "GB/s")


def test_compare_of_equal_single_runs_says_within_noise_with_an_interval():
    """A 95 % interval holds the true difference (zero) in about 19 pairs of 20: of 40 pairs of
    equal runs, at most a few may be called different, never most."""
    pairs = [(_steady(1e9, 60, seed=2 * k), _steady(1e9, 60, seed=2 * k + 1)) for k in range(40)]
    verdicts = [_gbps(a, b) for a, b in pairs]
    assert sum(v.word == "within noise" for v in verdicts) >= 34
    first = verdicts[0]
    assert 0 < first.verdict.half_width < 0.05 and "12 batches of 5 s" in first.method


def test_compare_of_half_the_rate_says_slower():
    for k in range(10):
        gbps = _gbps(_steady(1e9, 60, seed=2 * k), _steady(0.5e9, 60, seed=2 * k + 1))
        assert gbps.word == "slower" and gbps.ratio == pytest.approx(0.5, rel=0.05)
        assert re.fullmatch(r"-(4[89]|5[01])\.\d% ± [0-2]\.\d%", gbps.verdict.describe(gbps.a))


def test_a_short_run_gets_no_verdict_and_the_notes_say_why():
    a, b = _steady(1e9, 8, seed=1), _steady(0.5e9, 8, seed=2)
    differences = compare(a, b)
    assert {d.word for d in differences} == {"-"}
    assert any("fewer than 3 samples" in note for note in compare_notes(differences, a, b))


def test_repeats_are_compared_with_welch_over_the_runs():
    a = Runs(tuple(_steady(1e9 * f, 10, seed=i) for i, f in enumerate((1.0, 1.02, 0.98))))
    b = Runs(tuple(_steady(1e9 * f, 10, seed=i) for i, f in enumerate((0.5, 0.52, 0.49))))
    gbps = next(d for d in compare(a, b) if d.metric == "GB/s")
    assert gbps.word == "slower" and gbps.method == "A 3 repeats, B 3 repeats"
    p99 = next(d for d in compare(a, a) if d.metric == "p99 ms")
    assert p99.word == "within noise", "repeats give latency an interval too"


def test_a_comparison_of_different_workloads_is_warned_of():
    quick = _steady(1e9, 30, seed=1, phase="get", size="10MiB")
    mixed = _steady(1e9, 30, seed=1, phase="get", size="1MiB")
    assert mismatches(quick, mixed) == ["object size (10MiB vs 1MiB)"]
    notes = compare_notes(compare(quick, mixed), quick, mixed)
    assert any(n.startswith("warning: A and B are different workloads") for n in notes)
    assert mismatches(quick, quick) == []

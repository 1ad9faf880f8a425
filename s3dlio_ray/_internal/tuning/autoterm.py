"""Autoterm: end a phase once its throughput has stopped changing (as `warp --autoterm` does).

Steady means: the samples cover at least `window_s`, and over that window the mean of the later
half differs from the mean of the earlier half by no more than `within_pct` percent of the
window's mean. Comparing halves, not single samples, keeps a noisy but level endpoint steady and
still sees a ramp (the halves differ) as not yet steady.
"""

from __future__ import annotations

from collections import deque


class SteadyDetector:
    """Fed (seconds since the phase began, throughput) samples; says when it is steady."""

    def __init__(self, window_s: float, within_pct: float) -> None:
        self.window_s = window_s
        self.within = within_pct / 100
        self._samples: deque[tuple[float, float]] = deque()

    def add(self, t_s: float, rate: float) -> bool:
        """Take one sample; True once the throughput is steady."""
        self._samples.append((t_s, rate))
        while len(self._samples) > 2 and t_s - self._samples[1][0] >= self.window_s:
            self._samples.popleft()
        return self.steady()

    def steady(self) -> bool:
        samples = list(self._samples)
        if len(samples) < 4 or samples[-1][0] - samples[0][0] < self.window_s:
            return False
        half = len(samples) // 2
        early = sum(r for _, r in samples[:half]) / half
        late = sum(r for _, r in samples[half:]) / (len(samples) - half)
        mean = sum(r for _, r in samples) / len(samples)
        return mean > 0 and abs(late - early) <= self.within * mean


def steadiness_rate(nbytes: int, ops: int, seconds: float) -> float:
    """What autoterm watches: bytes per second, or operations per second if no bytes moved."""
    if seconds <= 0:
        return 0.0
    return (nbytes if nbytes else ops) / seconds

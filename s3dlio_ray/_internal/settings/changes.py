"""Settings changed while a run goes (`s3dlio-ray control`, `RunHandle.control`).

A storage engineer watching a two-hour run turns a knob without restarting it: the targets, the
concurrency bounds (or a fixed concurrency), the rate limit, and pause / resume. A change is
checked as loading the workload would check it, against everything else the run was started
with, and is refused whole (one line, nothing changed) or taken whole. The driver numbers each
change and hands every engine the latest with its next statistics request, so it reaches each
within a tick. Pure: no I/O.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.settings.load import parse_values
from s3dlio_ray._internal.settings.schema import Settings
from s3dlio_ray._internal.settings.values import Client
from s3dlio_ray._internal.tuning.pacing import RateLimit

CHANGEABLE = (
    "target_gbps",
    "cluster_target_gbps",
    "concurrency",
    "min_concurrency",
    "max_concurrency",
    "rate_limit",
)
"""The settings a running run takes changes of; `paused` besides them."""


@dataclass(frozen=True)
class Overrides:
    """Every change so far, over the settings the run started with; `version` counts them."""

    values: tuple[tuple[str, Any], ...] = ()
    paused: bool = False
    version: int = 0

    def onto(self, settings: Settings) -> Settings:
        """The settings with every change taken; each was checked against the whole when it was
        taken (`change`), so applying them checks nothing again (on an actor, where a
        manifest's path need not exist, or on every metrics scrape)."""
        return settings.derive(**dict(self.values)) if self.values else settings

    def rate_limit(self, started_with: RateLimit | None) -> RateLimit | None:
        """The cluster's cap now: the changed one, else the one the phase started with."""
        return dict(self.values).get("rate_limit", started_with)

    def change(self, settings: Settings, request: Mapping[str, Any]) -> tuple[Overrides, dict]:
        """These overrides with `request` taken (keys of CHANGEABLE, and `paused`), and what
        it changed as plain data; ConfigError, naming the value and how to fix it, when the
        request is not a change this run can take."""
        request = dict(request)
        paused = request.pop("paused", None)
        if paused is not None and not isinstance(paused, bool):
            raise ConfigError(f"paused: expected true or false (got {paused!r})")
        unknown = sorted(set(request) - set(CHANGEABLE))
        if unknown:
            raise ConfigError(
                f"control: {', '.join(unknown)} cannot change while a run goes; these can: "
                f"{', '.join(CHANGEABLE)}, paused"
            )
        if not request and paused is None:
            raise ConfigError("control: nothing to change: give a setting, --pause or --resume")
        parsed = parse_values(request, "control")
        before = self.onto(settings)
        after = dataclasses.replace(before, **parsed)
        _check_change(before, after)
        changed = {k: _shown(v) for k, v in parsed.items() if getattr(before, k) != v}
        if paused is not None and paused != self.paused:
            changed["paused"] = paused
        merged = {**dict(self.values), **parsed}
        return (
            Overrides(
                tuple(sorted(merged.items())),
                self.paused if paused is None else paused,
                self.version + 1,
            ),
            changed,
        )


UNCHANGED = Overrides()
"""A run as it started."""


def _check_change(before: Settings, after: Settings) -> None:
    """What a running run cannot take that a new one could (the settings' own rules ran when
    `after` was made)."""
    if after.client == Client.BOTO3 and after.concurrency != before.concurrency:
        raise ConfigError(
            "concurrency: the boto3 baseline's thread pool is sized at the start; it cannot "
            "change while the run goes"
        )
    if after.cluster_controlled != before.cluster_controlled:
        running = (
            "the driver steers this run's actors"
            if before.cluster_controlled
            else ("this run's actors steer themselves")
        )
        raise ConfigError(
            f"controller: {running}, and the controller is chosen when a run starts: change "
            "target_gbps with the actor controller, cluster_target_gbps with the cluster's"
        )


def _shown(value: Any) -> Any:
    """A changed value as the change's answer shows it (a rate limit as people write it)."""
    return value.describe() if isinstance(value, RateLimit) else value

"""One call per node, not one per actor, when the driver gathers the actors' statistics.

Ray costs the driver about a millisecond of CPU for each actor call it awaits (BENCHMARKS.md, the
driver at scale), so gathering every actor each second grows with the actors. The driver asks one
gatherer per node instead; the gatherer asks its node's actors on the node's own CPU and answers
all their snapshots in one reply.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import ray

from s3dlio_ray._internal.execution.admission import ShareLimits
from s3dlio_ray._internal.live.pool import Reply
from s3dlio_ray._internal.tuning.cluster import Steer

SeatAsk = tuple[int, tuple[int, Steer] | None]
"""An actor's index on the node, and the steer its share gets first (task id, how)."""


class NodeGatherer:
    """Asks the transfer actors of its node on their behalf, in one call from the driver."""

    def __init__(self, actors: Sequence[ray.actor.ActorHandle]) -> None:
        self._actors = list(actors)

    async def snapshots(
        self, asks: Sequence[SeatAsk], adjust: ShareLimits | None = None
    ) -> list[Reply | None]:
        """Each asked actor's (task id, snapshot), or None for an actor that did not answer;
        `adjust`: the run's latest changes, for every actor asked."""
        replies = await asyncio.gather(
            *(self._actors[index].snapshot.remote(steer, adjust) for index, steer in asks),
            return_exceptions=True,
        )
        return [None if isinstance(reply, BaseException) else reply for reply in replies]


NODE_GATHERER = ray.remote(NodeGatherer)
"""The gatherer as a Ray actor class (placed with no CPU of its own, never restarted)."""

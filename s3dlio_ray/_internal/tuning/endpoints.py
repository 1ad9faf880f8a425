"""Which of a storage cluster's endpoints the next request goes to, and which are resting.

Pure logic, no I/O: the client asks `pick()` before each attempt and reports how it went.
`round-robin` rotates over the endpoints from an offset (an actor's rank, so a cluster's actors
start on different endpoints and each gets an even share); `least-busy` takes the endpoint with
the fewest of this client's requests in flight. An endpoint that fails `failures_to_rest` times
in a row (no connection, a timeout, a broken connection) rests for `rest_s`, doubling each time
it fails again after resting, up to `max_rest_s`; its requests go to the others meanwhile. With
one endpoint nothing ever rests: the client's retries decide as they always did.
"""

from __future__ import annotations

from enum import StrEnum


class EndpointPolicy(StrEnum):
    ROUND_ROBIN = "round-robin"
    LEAST_BUSY = "least-busy"


class Rotation:
    def __init__(
        self,
        count: int,
        policy: EndpointPolicy = EndpointPolicy.ROUND_ROBIN,
        offset: int = 0,
        failures_to_rest: int = 3,
        rest_s: float = 5.0,
        max_rest_s: float = 60.0,
    ) -> None:
        if count < 1:
            raise ValueError("a rotation needs at least one endpoint")
        self.count = count
        self.policy = policy
        self.in_flight = [0] * count
        self._next = offset % count
        self._failures = [0] * count
        self._rests = [0] * count
        self._resting_until = [0.0] * count
        self._failures_to_rest = failures_to_rest
        self._rest_s = rest_s
        self._max_rest_s = max_rest_s

    def resting(self, index: int, now: float) -> bool:
        return self._resting_until[index] > now

    def pick(self, now: float, avoid: int | None = None) -> int | None:
        """The endpoint for the next attempt (not `avoid`, the one that just failed, while
        another is up), or None when every endpoint rests."""
        if self.count == 1:
            return 0
        up = [
            i
            for i in (*range(self._next, self.count), *range(self._next))
            if not self.resting(i, now)
        ]
        if not up:
            return None
        if avoid in up and len(up) > 1:
            up.remove(avoid)
        chosen = up[0]
        if self.policy == EndpointPolicy.LEAST_BUSY:
            chosen = min(up, key=self.in_flight.__getitem__)
        self._next = (chosen + 1) % self.count
        return chosen

    def succeeded(self, index: int) -> None:
        self._failures[index] = 0
        self._rests[index] = 0

    def failed(self, index: int, now: float) -> float | None:
        """A connection-level failure; answers the rest it starts now, if it starts one."""
        if self.count == 1:
            return None
        self._failures[index] += 1
        if self._failures[index] < self._failures_to_rest:
            return None
        self._failures[index] = 0
        rest = min(self._max_rest_s, self._rest_s * 2 ** self._rests[index])
        self._rests[index] += 1
        self._resting_until[index] = now + rest
        return rest

    def next_return(self) -> float:
        """When the first resting endpoint comes back."""
        return min(self._resting_until)

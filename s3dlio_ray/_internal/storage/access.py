"""Where a run's requests go and as whom: what every engine's client is built from, decided once
by the run's plan on the driver and handed to every actor, so all nodes talk to the same
endpoints, in the same region, as one identity."""

from __future__ import annotations

from dataclasses import dataclass

from s3dlio_ray._internal.model.endpoint import Endpoint
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials


@dataclass(frozen=True)
class Access:
    endpoints: tuple[Endpoint, ...]
    """Empty: AWS S3's regional endpoint."""
    region: str
    credentials: StaticCredentials | None = None
    """Given keys (the embedded endpoint's, or the driver's handed to the actors); None:
    botocore's chain where the client is built."""
    embedded: bool = False
    """The endpoint is this machine's own loopback one, which no other machine reaches."""

    @property
    def first(self) -> Endpoint | None:
        """The endpoint a single-endpoint client (the boto3 baseline) talks to."""
        return self.endpoints[0] if self.endpoints else None

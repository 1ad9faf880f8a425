"""Performance profiles: what one connection is expected to carry on a kind of endpoint."""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum

from s3dlio_ray._internal.model.endpoint import Endpoint

MB = 1_000_000


class Direction(Enum):
    """Which way the bytes flow: uploads and downloads have different per-connection rates."""

    UPLOAD = "upload"
    DOWNLOAD = "download"


@dataclass(frozen=True)
class Profile:
    name: str
    download_bytes_per_s: float
    upload_bytes_per_s: float
    rtt_s: float
    http2_allowed: bool

    def per_connection_rate(self, direction: Direction) -> float:
        if direction is Direction.UPLOAD:
            return self.upload_bytes_per_s
        return self.download_bytes_per_s


AWS = Profile("aws", 90 * MB, 20 * MB, 0.100, http2_allowed=False)
HIGH_PERFORMANCE = Profile("high-performance", 150 * MB, 100 * MB, 0.025, http2_allowed=True)
PROFILES = {p.name: p for p in (AWS, HIGH_PERFORMANCE)}


def select_profile(name: str, endpoint: Endpoint | None) -> Profile:
    """The named profile, or for "auto" the one that fits the endpoint (none: AWS S3's own).
    The settings allow only these names."""
    if name == "auto":
        return AWS if endpoint is None or endpoint.is_aws else HIGH_PERFORMANCE
    return PROFILES[name]


def start_concurrency(
    profile: Profile, direction: Direction, target_bytes_per_s: float, lo: int, hi: int
) -> int:
    """Connections needed to reach the target at the profile's rate for this direction."""
    needed = -(-target_bytes_per_s // profile.per_connection_rate(direction))
    return int(min(max(needed, lo), hi))

"""The words every layer shares: which phase a workload runs, and why a phase stopped. Kept
apart from the result records so that a module naming a phase need not import the run model."""

from __future__ import annotations

from enum import StrEnum


class Phase(StrEnum):
    """What a workload runs, in order. SLEEP and CLEANUP happen on the driver; every other phase
    runs on the executor's engines."""

    PUT = "put"
    GET = "get"
    MIXED = "mixed"
    LIST = "list"
    STAT = "stat"
    DELETE = "delete"
    CHECKPOINT = "checkpoint"
    RESTORE = "restore"
    DATAGEN = "datagen"
    TRAIN = "train"
    UPLOAD = "upload"
    DOWNLOAD = "download"
    REPLAY = "replay"
    SLEEP = "sleep"
    CLEANUP = "cleanup"

    @property
    def transfers(self) -> bool:
        return self not in (Phase.SLEEP, Phase.CLEANUP)


class EndedBy(StrEnum):
    """Why a phase stopped starting operations."""

    KEYS = "keys"
    DURATION = "duration"
    AUTOTERM = "autoterm"
    ERROR = "error"
    INTERRUPTED = "interrupted"


class Limit(StrEnum):
    """What set a phase's rate (model.bottleneck has the rule of each)."""

    CLIENT_CPU = "client-cpu"
    CLIENT_NETWORK = "client-network"
    SERVER = "server"
    THROTTLED = "throttled"
    TARGET = "target"
    RATE_LIMIT = "rate-limit"
    UNCLEAR = "unclear"

"""Opening the op-logs a replay reads: zstd-compressed or plain, told apart by their first
bytes rather than their names (warp's are .csv.zst, this tool's and s3dlio's .tsv.zst)."""

from __future__ import annotations

import io
from collections.abc import Iterator, Sequence
from pathlib import Path

import zstandard

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.replay.formats import LogFile, parse

ZSTD_MAGIC = b"\x28\xb5\x2f\xfd"


def _lines(path: Path) -> Iterator[str]:
    with path.open("rb") as raw:
        compressed = raw.read(4) == ZSTD_MAGIC
        raw.seek(0)
        stream = zstandard.ZstdDecompressor().stream_reader(raw) if compressed else raw
        yield from io.TextIOWrapper(stream, encoding="utf-8", errors="replace")


def read_logs(paths: Sequence[str | Path]) -> list[LogFile]:
    """Every log named, parsed; a missing or unreadable file is one clear error."""
    if not paths:
        raise ConfigError("replay: name at least one op-log file")
    logs = []
    for name in paths:
        path = Path(name)
        if not path.is_file():
            raise ConfigError(f"replay: {name}: no such op-log file")
        try:
            logs.append(parse(str(name), _lines(path)))
        except (OSError, zstandard.ZstdError) as exc:
            raise ConfigError(f"replay: {name}: cannot be read ({exc})") from None
    return logs

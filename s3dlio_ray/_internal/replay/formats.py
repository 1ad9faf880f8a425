"""The op-log formats a replay reads, told apart by their content: this tool's, warp's and
s3dlio's. All three write the same 13 tab-separated columns under a header (newer warp adds
`cat` and ends with `# ` comment lines); they differ in what `op`, `endpoint` and `file` hold:

- this tool: `file` is `s3://BUCKET/KEY`; requests by their S3 names where no short one fits
  (CreateMultipartUpload, CompleteMultipartUpload, ...), an UploadPart logged as PUT;
- s3dlio: `endpoint` is `s3://BUCKET`, `file` is `BUCKET/KEY`;
- warp: `file` is the key alone (the bucket is not recorded), `endpoint` the host.
"""

from __future__ import annotations

import csv
import datetime
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import NamedTuple

from s3dlio_ray._internal.model.errors import ConfigError

OWN, WARP, S3DLIO = "s3dlio-ray", "warp", "s3dlio"

REQUIRED = ("op", "n_objects", "bytes", "file", "error", "start")

OPERATIONS = {
    "GET": "GET",
    "GetObject": "GET",
    "PUT": "PUT",
    "PutObject": "PUT",
    "UploadPart": "PUT",
    "HEAD": "HEAD",
    "STAT": "HEAD",
    "HeadObject": "HEAD",
    "DELETE": "DELETE",
    "DeleteObject": "DELETE",
    "DeleteObjects": "DELETE",
    "LIST": "LIST",
    "ListObjectsV2": "LIST",
    "CreateMultipartUpload": "CreateMultipartUpload",
    "CompleteMultipartUpload": "CompleteMultipartUpload",
    "AbortMultipartUpload": "AbortMultipartUpload",
}
"""Each format's operation names, as the replay plans them; any other is not replayed."""

_RFC3339 = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)")


def rfc3339_ns(text: str) -> int:
    """Nanoseconds since the epoch of an RFC 3339 time with up to nine fractional digits (Go's
    RFC3339Nano trims trailing zeros; any zone)."""
    match = _RFC3339.fullmatch(text.strip())
    if match is None:
        raise ValueError(f"not an RFC 3339 time: {text!r}")
    whole, fraction, zone = match.groups()
    moment = datetime.datetime.fromisoformat(whole + ("+00:00" if zone == "Z" else zone))
    return int(moment.timestamp()) * 1_000_000_000 + int((fraction or "0").ljust(9, "0"))


class Logged(NamedTuple):
    """One logged request: when it started, what it was, on what, and whether it failed."""

    start_ns: int
    op: str
    bucket: str
    key: str
    nbytes: int
    n_objects: int
    failed: bool


@dataclass(frozen=True)
class LogFile:
    """What one op-log held: its format and its requests in the order written."""

    name: str
    format: str
    rows: tuple[Logged, ...]


def detect(header: list[str], sample: dict[str, str] | None) -> str:
    """The format of a log from its header and first request."""
    if "cat" in header:
        return WARP
    if sample is None:
        return OWN
    if sample["file"].startswith("s3://"):
        return OWN
    if re.fullmatch(r"[a-z0-9]+://[^:/]*", sample.get("endpoint", "")):
        return S3DLIO
    return WARP


def _location(fmt: str, row: dict[str, str]) -> tuple[str, str]:
    path = row["file"]
    if fmt == OWN:
        bucket, _, key = path.removeprefix("s3://").partition("/")
        return bucket, key
    if fmt == S3DLIO:
        bucket, _, key = path.partition("/")
        return bucket, key
    return "", path


def _requests(lines: Iterable[str]) -> Iterator[str]:
    """The header and request lines: no blank lines, no warp `# ` comments."""
    for line in lines:
        if line.strip() and not line.startswith("# "):
            yield line


def parse(name: str, lines: Iterable[str]) -> LogFile:
    """Read one op-log's lines (header first); a line that is not a request of the format is
    an error naming the file and line."""
    # warp quotes a field holding a tab or a quote by CSV's rules: the csv module reads them.
    reader = csv.reader(_requests(lines), delimiter="\t")
    header = next(reader, [])
    missing = [column for column in REQUIRED if column not in header]
    if missing:
        raise ConfigError(
            f"{name}: not an op-log (no {', '.join(missing)} column in its header); expected "
            "this tool's, warp's (.csv.zst) or s3dlio's TSV op-log"
        )
    rows: list[Logged] = []
    fmt: str | None = None
    for values in reader:
        number = reader.line_num
        if len(values) < len(header):
            raise ConfigError(
                f"{name}:{number}: {len(values)} fields, the header has {len(header)}"
            )
        row = dict(zip(header, values, strict=False))
        fmt = fmt or detect(header, row)
        bucket, key = _location(fmt, row)
        try:
            rows.append(
                Logged(
                    rfc3339_ns(row["start"]),
                    OPERATIONS.get(row["op"], row["op"]),
                    bucket,
                    key,
                    int(row["bytes"]),
                    int(row["n_objects"]),
                    bool(row["error"]),
                )
            )
        except ValueError as exc:
            raise ConfigError(f"{name}:{number}: {exc}") from None
    return LogFile(name, fmt or detect(header, None), tuple(rows))


def merged(files: Iterable[LogFile]) -> Iterator[Logged]:
    """Every file's requests in one order, by start time (a file is written as requests end)."""
    rows = [row for log in files for row in log.rows]
    rows.sort(key=lambda row: row.start_ns)
    return iter(rows)

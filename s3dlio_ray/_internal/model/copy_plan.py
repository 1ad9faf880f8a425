"""What a copy (`s3dlio-ray cp`) moves and where: its two ends, which names pass the include /
exclude patterns, each file's name at the other end, and the manifest of checksums the copy
keeps beside the objects. Pure: no I/O.

Names below the source are relative, `/`-separated. A name is copied when it matches no
`exclude` pattern, or matches an `include` pattern (so `--exclude '*' --include '*.jpg'` copies
only the JPEGs). The manifest (`.s3dlio-ray-manifest.json` in the destination prefix) holds
each object's size and CRC32, merged with what an earlier copy there kept; a download checks
every file against it, or against the checksum the store kept where it has none.
"""

from __future__ import annotations

import dataclasses
import fnmatch
import json
from array import array
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import Any, overload

from s3dlio_ray._internal.model.errors import S3DlioRayError
from s3dlio_ray._internal.model.keys import ListedKeys

MANIFEST = ".s3dlio-ray-manifest.json"
NODE = "{node}"
"""In a download's local destination: the node's name (each node's copy apart)."""


@dataclass(frozen=True)
class S3Location:
    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> S3Location:
        """From s3://BUCKET[/PREFIX]."""
        bucket, _, prefix = url.removeprefix("s3://").partition("/")
        return cls(bucket, prefix)

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.prefix}"


@dataclass(frozen=True)
class CopySpec:
    """One copy between a local path and an S3 location.

    `single`: the source is one file (or object), copied to `local` or `remote.prefix` itself
    when they do not end in `/`, else to its own name inside them.
    """

    local: str
    remote: S3Location
    single: bool = False
    per_node: bool = False
    sync: bool = False
    clobber: bool = True
    checksum_headers: bool = True

    @property
    def folder(self) -> str:
        """The prefix under which the objects' names continue the relative names."""
        prefix = self.remote.prefix
        if self.single:
            return prefix if prefix.endswith("/") or not prefix else prefix.rsplit("/", 1)[0] + "/"
        return prefix if not prefix or prefix.endswith("/") else prefix + "/"

    @property
    def manifest_key(self) -> str:
        return self.folder + MANIFEST

    def key_for(self, name: str) -> str:
        """The object a relative name goes to (or comes from)."""
        if self.single and self.remote.prefix and not self.remote.prefix.endswith("/"):
            return self.remote.prefix
        return self.folder + name

    def remote_name(self, name: str) -> str:
        """The object's name below the copy's prefix (as listings and the manifest name it)."""
        return self.key_for(name)[len(self.folder) :]

    def path_for(self, name: str) -> str:
        """The local file a relative name comes from (or goes to)."""
        if self.single and not self.local.endswith("/"):
            return self.local
        return str(PurePosixPath(self.local) / name)

    def for_node(self, node: str) -> CopySpec:
        """This copy as `node` does it: {node} in the local path is its name."""
        return dataclasses.replace(self, local=self.local.replace(NODE, node))


def copy_workload(source: str, destination: str) -> dict[str, object]:
    """The workload of one copy (`s3dlio-ray cp SOURCE DESTINATION`): an upload when the
    destination is s3://BUCKET/PREFIX, else a download."""
    upward = destination.startswith("s3://")
    remote = destination if upward else source
    return {
        "name": "cp",
        "phases": ["upload" if upward else "download"],
        "copy_from": source,
        "copy_to": destination,
        "bucket": S3Location.parse(remote).bucket or None,
    }


def selected(name: str, include: Sequence[str], exclude: Sequence[str]) -> bool:
    if any(fnmatch.fnmatchcase(name, pattern) for pattern in include):
        return True
    return not any(fnmatch.fnmatchcase(name, pattern) for pattern in exclude)


class CopyItems(ListedKeys):
    """The files of a copy: relative names and sizes, and the CRC32 the destination is known
    to hold for each (-1: none), so a share carries what `sync` compares against."""

    __slots__ = ("crcs",)

    def __init__(self, names: Sequence[str], sizes: Sequence[int], crcs: Sequence[int]) -> None:
        super().__init__(names, sizes)
        if len(crcs) != len(self.keys):
            raise ValueError("every name needs its checksum")
        self.crcs = crcs if isinstance(crcs, array) else array("q", crcs)

    @overload
    def __getitem__(self, index: int) -> str: ...

    @overload
    def __getitem__(self, index: slice) -> CopyItems: ...

    def __getitem__(self, index: int | slice) -> str | CopyItems:
        if isinstance(index, slice):
            return CopyItems(self.keys[index], self.sizes[index], self.crcs[index])
        return self.keys[index]

    def __reduce__(self) -> tuple[type[ListedKeys], tuple[Any, ...]]:
        return CopyItems, (self.keys, self.sizes, self.crcs)

    def items(self) -> Iterable[tuple[str, int, int | None]]:
        for name, size, crc in zip(self.keys, self.sizes, self.crcs, strict=True):
            yield name, size, None if crc < 0 else crc


def manifest_entries(text: bytes, where: str = MANIFEST) -> dict[str, tuple[int, int]]:
    """A manifest's entries, name -> (size, crc32). One that does not read (damaged in the
    store, or someone else's file of that name) is a fault of what was stored, not bad input:
    S3DlioRayError (exit 1)."""
    try:
        doc = json.loads(text)
        return {name: (int(e["size"]), int(e["crc32"])) for name, e in doc["objects"].items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        raise S3DlioRayError(
            f"{where}: damaged, or not a manifest this tool wrote; nothing was copied (move it "
            "away, or copy elsewhere)"
        ) from None


def manifest_text(entries: Mapping[str, tuple[int, int]]) -> bytes:
    objects = {name: {"size": size, "crc32": crc} for name, (size, crc) in sorted(entries.items())}
    doc = {"version": 1, "algorithm": "crc32", "objects": objects}
    return json.dumps(doc, indent=1).encode() + b"\n"

"""Objects a bucket already holds, for phases with `source: existing`: where a listing splits,
and the manifest that skips listing.

The driver goes one level down (delimiter `/`): that listing names the folders under the prefix
and, on the way, every object directly in it. The folders go to the actors as parts of one LIST
phase, so a dataset laid out in folders is listed by every actor at once; a flat prefix is listed
by the driver alone (no part of it is known before it is listed). A manifest names one key per
line, optionally followed by a tab and its size in bytes; a key without a size is read without
knowing its length first (and checked for none).
"""

from __future__ import annotations

from array import array
from dataclasses import dataclass
from pathlib import Path

from s3dlio_ray._internal.model.errors import ConfigError
from s3dlio_ray._internal.model.keys import ListedKeys, Listing
from s3dlio_ray._internal.storage.s3.client import S3Client

UNKNOWN_SIZE = -1


@dataclass(frozen=True)
class TopLevel:
    """What one delimiter listing of a prefix finds: the objects directly in it, and a part to
    list for each folder below it."""

    direct: ListedKeys
    folders: list[Listing]

    def parts(self, prefix: str) -> list[Listing]:
        """Every part of the prefix, the objects directly in it as one (for a LIST phase)."""
        direct = [Listing(prefix, delimiter=True)] if self.direct else []
        return [*direct, *self.folders]


async def top_level(client: S3Client, bucket: str, prefix: str) -> TopLevel:
    keys: list[str] = []
    sizes = array("q")
    folders: list[Listing] = []
    token: str | None = None
    while True:
        page = await client.list_objects_page(bucket, prefix, token, delimiter="/")
        keys += (info.key for info in page.objects)
        sizes.extend(info.size for info in page.objects)
        folders += (Listing(folder) for folder in page.prefixes)
        token = page.next_token
        if token is None:
            return TopLevel(ListedKeys(keys, sizes), folders)


def read_manifest(path: str) -> ListedKeys:
    """Keys (and optionally sizes) from a manifest file; one line saying what is wrong with it."""
    keys: list[str] = []
    sizes = array("q")
    try:
        lines = Path(path).read_text().splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"manifest: cannot read {path}: {exc}") from None
    for number, line in enumerate(lines, start=1):
        if not line.strip() or line.startswith("#"):
            continue
        key, _, size = line.partition("\t")
        if size and not size.strip().isdigit():
            raise ConfigError(
                f"manifest: {path} line {number}: expected KEY or KEY<TAB>SIZE in bytes, got "
                f"{line[:80]!r}"
            )
        keys.append(key)
        sizes.append(int(size) if size.strip() else UNKNOWN_SIZE)
    if not keys:
        raise ConfigError(f"manifest: {path} names no keys")
    return ListedKeys(keys, sizes)

"""Objects a bucket already holds, for phases with `source: existing`: listed once, or read from
a manifest that skips listing.

A listing goes one level down first (delimiter `/`) and lists the prefixes it finds side by side,
so a dataset laid out in folders is listed at many requests in flight rather than page after page.
The keys are held as one compact list of names and sizes (keys.ListedKeys) and sharded like any
other keys. A manifest names one key per line, optionally followed by a tab and its size in
bytes; a key without a size is read without knowing its length first (and checked for none).
"""

from __future__ import annotations

import asyncio
from array import array
from pathlib import Path

from s3dlio_ray.errors import ConfigError
from s3dlio_ray.keys import ListedKeys, Listing
from s3dlio_ray.s3.client import S3Client

PARALLEL_LISTINGS = 16
UNKNOWN_SIZE = -1


async def top_level(client: S3Client, bucket: str, prefix: str) -> list[Listing]:
    """The parts of `prefix` one delimiter listing finds: each folder below it, and the objects
    directly in it."""
    folders, token = [], None
    while True:
        page = await client.list_objects_page(bucket, prefix, token, delimiter="/")
        folders += page.prefixes
        token = page.next_token
        if token is None:
            break
    return [Listing(prefix, delimiter=True), *(Listing(folder) for folder in folders)]


async def list_existing(client: S3Client, bucket: str, prefix: str) -> ListedKeys:
    """Every object under `prefix`, its folders listed side by side."""
    parts = await top_level(client, bucket, prefix)
    gate = asyncio.Semaphore(PARALLEL_LISTINGS)

    async def list_part(part: Listing) -> tuple[list[str], array]:
        keys: list[str] = []
        sizes = array("q")
        async with gate:
            token = None
            while True:
                page = await client.list_objects_page(
                    bucket, part.prefix, token, delimiter="/" if part.delimiter else None
                )
                keys += [info.key for info in page.objects]
                sizes.extend(info.size for info in page.objects)
                token = page.next_token
                if token is None:
                    return keys, sizes

    found = await asyncio.gather(*(list_part(part) for part in parts))
    keys = [key for part_keys, _ in found for key in part_keys]
    sizes = array("q", (size for _, part_sizes in found for size in part_sizes))
    if not keys:
        raise ConfigError(
            f"source: existing: s3://{bucket}/{prefix} holds no objects; check bucket and prefix"
        )
    return ListedKeys(keys, sizes)


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

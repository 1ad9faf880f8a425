"""The baseline store: plain boto3 put_object/get_object/head_object/delete_object on threads.

The engine runs it through the same loop as its own client, with concurrency fixed (boto3 has
no adaptive control) at the setting's number, or 8 (close to boto3's usual 10). Its errors are
translated into this project's, so an AccessDenied ends a baseline phase as it ends an engine
phase.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from s3dlio_ray._internal.model.content import ObjectData
from s3dlio_ray._internal.model.keys import Listing
from s3dlio_ray._internal.storage.object_store import Check
from s3dlio_ray._internal.storage.s3.client import ObjectInfo, PartGate
from s3dlio_ray._internal.storage.s3.errors import S3ConnectionError, S3Error
from s3dlio_ray._internal.storage.s3.signing import StaticCredentials

DEFAULT_CONCURRENCY = 8

T = TypeVar("T")


class Boto3Store:
    """boto3 calls on `threads` threads, awaited from the engine's event loop."""

    def __init__(
        self,
        endpoint: str | None,
        region: str,
        credentials: StaticCredentials | None,
        threads: int,
    ) -> None:
        keys = (
            {
                "aws_access_key_id": credentials.access_key_id,
                "aws_secret_access_key": credentials.secret_access_key,
                "aws_session_token": credentials.session_token,
            }
            if credentials
            else {}
        )
        self._s3 = boto3.client(
            "s3",
            endpoint_url=endpoint,
            region_name=region,
            config=Config(max_pool_connections=threads, s3={"addressing_style": "path"}),
            **keys,
        )
        self.endpoint = self._s3.meta.endpoint_url
        self.source_address: str | None = None
        self.on_retry: Callable[[bool], None] | None = None
        self._pool = ThreadPoolExecutor(threads, thread_name_prefix="boto3")

    def answered_by(self) -> str:
        return self.endpoint

    async def _call(self, operation: str, bucket: str, key: str, call: Callable[[], T]) -> T:
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, call)
        except ClientError as exc:
            error = exc.response.get("Error", {})
            status = exc.response.get("ResponseMetadata", {}).get("HTTPStatusCode", 0)
            raise S3Error(
                operation, f"s3://{bucket}/{key}", status, error.get("Code", ""), ""
            ) from None
        except EndpointConnectionError as exc:
            raise S3ConnectionError(f"{operation} s3://{bucket}/{key}: {exc}") from None
        except BotoCoreError as exc:
            raise S3ConnectionError(f"{operation} s3://{bucket}/{key}: {exc}") from None

    async def put(self, bucket: str, key: str, size: int, data: ObjectData, gate: PartGate) -> None:
        body = data.content(key, size)
        await self._call(
            "PutObject", bucket, key, lambda: self._s3.put_object(Bucket=bucket, Key=key, Body=body)
        )

    async def get(
        self,
        bucket: str,
        key: str,
        size: int,
        gate: PartGate,
        check: Check | None,
        checksum: bool = False,
        span: tuple[int, int] | None = None,
    ) -> tuple[int, float | None]:
        extra: dict[str, str] = {"ChecksumMode": "ENABLED"} if checksum else {}
        if span is not None:
            extra["Range"] = f"bytes={span[0]}-{span[0] + span[1] - 1}"

        def get_one() -> tuple[int, float]:
            started = time.perf_counter()
            response = self._s3.get_object(Bucket=bucket, Key=key, **extra)
            ttfb = time.perf_counter() - started
            body = response["Body"].read()
            if check is not None:
                check(memoryview(body), response["ResponseMetadata"]["HTTPHeaders"])
            return len(body), ttfb

        return await self._call("GetObject", bucket, key, get_one)

    async def stat(self, bucket: str, key: str) -> int:
        response = await self._call(
            "HeadObject", bucket, key, lambda: self._s3.head_object(Bucket=bucket, Key=key)
        )
        return int(response["ContentLength"])

    async def delete(self, bucket: str, key: str) -> None:
        await self._call(
            "DeleteObject", bucket, key, lambda: self._s3.delete_object(Bucket=bucket, Key=key)
        )

    async def delete_batch(self, bucket: str, keys: Sequence[str]) -> list[str]:
        batch = {"Objects": [{"Key": key} for key in keys], "Quiet": True}
        response = await self._call(
            "DeleteObjects",
            bucket,
            keys[0] if keys else "",
            lambda: self._s3.delete_objects(Bucket=bucket, Delete=batch),
        )
        return [error["Key"] for error in response.get("Errors", [])]

    async def list_page(
        self, bucket: str, listing: Listing, after: str | None, token: str | None, max_keys: int
    ) -> tuple[list[ObjectInfo], str | None]:
        query: dict[str, Any] = {"Bucket": bucket, "Prefix": listing.prefix, "MaxKeys": max_keys}
        if token:
            query["ContinuationToken"] = token
        elif after:
            query["StartAfter"] = after
        if listing.delimiter:
            query["Delimiter"] = "/"
        response = await self._call(
            "ListObjectsV2", bucket, listing.prefix, lambda: self._s3.list_objects_v2(**query)
        )
        found = [
            ObjectInfo(item["Key"], int(item["Size"]), item.get("ETag", ""))
            for item in response.get("Contents", [])
        ]
        token = response.get("NextContinuationToken") if response.get("IsTruncated") else None
        return found, token

    def quick(self) -> None:
        """None: boto3 has no request path without a thread per request."""
        return None

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False)
        self._s3.close()

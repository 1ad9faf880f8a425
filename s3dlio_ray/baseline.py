"""The baseline store: plain boto3 put_object/get_object/head_object/delete_object on threads.

The engine runs it through the same loop as its own client, with concurrency fixed (boto3 has
no adaptive control) at the setting's number, or 8 (close to boto3's usual 10). Its errors are
translated into this project's, so an AccessDenied ends a baseline phase as it ends an engine
phase.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import BotoCoreError, ClientError, EndpointConnectionError

from s3dlio_ray.phases.base import Check
from s3dlio_ray.s3.client import PartGate
from s3dlio_ray.s3.errors import S3ConnectionError, S3Error
from s3dlio_ray.s3.signing import StaticCredentials
from s3dlio_ray.workload import ObjectData

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
        self, bucket: str, key: str, size: int, gate: PartGate, check: Check | None
    ) -> tuple[int, float | None]:
        def get_one() -> tuple[int, float]:
            started = time.perf_counter()
            response = self._s3.get_object(Bucket=bucket, Key=key)
            ttfb = time.perf_counter() - started
            body = response["Body"].read()
            if check is not None:
                check(memoryview(body))
            return len(body), ttfb

        return await self._call("GetObject", bucket, key, get_one)

    async def stat(self, bucket: str, key: str) -> None:
        await self._call(
            "HeadObject", bucket, key, lambda: self._s3.head_object(Bucket=bucket, Key=key)
        )

    async def delete(self, bucket: str, key: str) -> None:
        await self._call(
            "DeleteObject", bucket, key, lambda: self._s3.delete_object(Bucket=bucket, Key=key)
        )

    async def aclose(self) -> None:
        self._pool.shutdown(wait=False)
        self._s3.close()

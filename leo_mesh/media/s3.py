"""The object store as a bucket of any S3-compatible store (AWS S3, MinIO, ...).

boto3 is a blocking client: its calls run on the store's own threads.
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any, TypeVar

import boto3
from botocore.config import Config
from botocore.exceptions import ClientError

from leo_mesh.media.settings import MediaSettings
from leo_mesh.media.store import CHUNK_BYTES, ObjectMissing, key_problem

T = TypeVar("T")

_MISSING = {"NoSuchKey", "404", "NotFound"}


@dataclass
class S3Object:
    size: int
    etag: str
    _body: Any  # botocore's StreamingBody
    _run: Callable[..., Any]

    async def chunks(self) -> AsyncIterator[bytes]:
        try:
            while chunk := await self._run(self._body.read, CHUNK_BYTES):
                yield chunk
        finally:
            self._body.close()


class S3Store:
    def __init__(self, client: Any, bucket: str, *, io_threads: int = 16, create_bucket: bool = False) -> None:
        self._client = client
        self.bucket = bucket
        self._create_bucket = create_bucket
        self._region = client.meta.region_name
        self._executor = ThreadPoolExecutor(io_threads, thread_name_prefix="media-s3")

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> S3Store:
        secret = settings.s3_secret_access_key
        client = boto3.session.Session().client(
            "s3",
            endpoint_url=settings.s3_endpoint_url,
            region_name=settings.s3_region,
            aws_access_key_id=settings.s3_access_key_id,
            aws_secret_access_key=secret.get_secret_value() if secret else None,
            config=Config(
                signature_version="s3v4",
                s3={"addressing_style": "path"},
                max_pool_connections=settings.io_threads,
                retries={"max_attempts": 3, "mode": "standard"},
            ),
        )
        return cls(client, settings.s3_bucket, io_threads=settings.io_threads, create_bucket=settings.s3_create_bucket)

    async def _run(self, call: Callable[..., T], *args: Any, **kwargs: Any) -> T:
        return await asyncio.get_running_loop().run_in_executor(
            self._executor, functools.partial(call, *args, **kwargs)
        )

    async def prepare(self) -> None:
        """Create the bucket if it does not exist, when asked to (development stores)."""
        if not self._create_bucket:
            return
        try:
            await self._run(self._client.head_bucket, Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in _MISSING:
                raise
            where = {} if self._region == "us-east-1" else {"LocationConstraint": self._region}
            await self._run(
                self._client.create_bucket,
                Bucket=self.bucket,
                **({"CreateBucketConfiguration": where} if where else {}),
            )

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        problem = key_problem(key)
        if problem:
            raise ValueError(f"object key {key!r} {problem}")
        await self._run(self._client.put_object, Bucket=self.bucket, Key=key, Body=data, ContentType=content_type)

    async def open(self, key: str) -> S3Object:
        try:
            answer = await self._run(self._client.get_object, Bucket=self.bucket, Key=key)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") in _MISSING:
                raise ObjectMissing(key) from None
            raise
        return S3Object(answer["ContentLength"], answer["ETag"], answer["Body"], self._run)

    async def delete(self, key: str) -> None:
        problem = key_problem(key)
        if problem:
            raise ValueError(f"object key {key!r} {problem}")
        # S3 answers a missing key's delete with success, as this promises.
        await self._run(self._client.delete_object, Bucket=self.bucket, Key=key)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
        self._client.close()

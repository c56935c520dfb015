"""The object store as a local directory: the default for `make run` and tests."""

from __future__ import annotations

import asyncio
import contextlib
import os
import uuid
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from leo_mesh.media.store import CHUNK_BYTES, ObjectMissing, key_problem


@dataclass
class LocalObject:
    path: Path
    size: int
    etag: str
    _executor: ThreadPoolExecutor

    async def chunks(self) -> AsyncIterator[bytes]:
        loop = asyncio.get_running_loop()
        try:
            file = await loop.run_in_executor(self._executor, self.path.open, "rb")
        except FileNotFoundError:
            raise ObjectMissing(str(self.path)) from None
        try:
            while chunk := await loop.run_in_executor(self._executor, file.read, CHUNK_BYTES):
                yield chunk
        finally:
            file.close()


class LocalStore:
    """Objects as files under `root`, keys as relative paths. A write goes to
    a temporary file first, so a reader never sees half an object."""

    def __init__(self, root: Path, *, io_threads: int = 16) -> None:
        self.root = root.resolve()
        self._executor = ThreadPoolExecutor(io_threads, thread_name_prefix="media-io")

    def _path(self, key: str) -> Path:
        problem = key_problem(key)
        if problem:
            raise ValueError(f"object key {key!r} {problem}")
        return self.root / key

    @staticmethod
    def _write(path: Path, data: bytes) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(f".{path.name}.{uuid.uuid4().hex}.partial")
        try:
            partial.write_bytes(data)
            os.replace(partial, path)
        finally:
            with contextlib.suppress(FileNotFoundError):
                partial.unlink()

    async def prepare(self) -> None:
        await asyncio.get_running_loop().run_in_executor(
            self._executor, lambda: self.root.mkdir(parents=True, exist_ok=True)
        )

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._write, self._path(key), data)

    async def open(self, key: str) -> LocalObject:
        path = self._path(key)
        try:
            stat = await asyncio.get_running_loop().run_in_executor(self._executor, path.stat)
        except FileNotFoundError:
            raise ObjectMissing(key) from None
        return LocalObject(path, stat.st_size, f'"{stat.st_size:x}-{stat.st_mtime_ns:x}"', self._executor)

    async def delete(self, key: str) -> None:
        path = self._path(key)

        def remove() -> None:
            with contextlib.suppress(FileNotFoundError):
                path.unlink()

        await asyncio.get_running_loop().run_in_executor(self._executor, remove)

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)

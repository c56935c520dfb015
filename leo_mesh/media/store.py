"""The object store of generated files: one small interface, a local
directory or an S3-compatible bucket behind it (`open_store`).

The AI writes each file once under a key of its generation
("<generation_id>/<index>.png") and reports the key; the api_server streams
the file back in chunks, never holding a whole file in memory.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Protocol

from leo_mesh.media.settings import MediaSettings

# Read and sent in pieces of this size.
CHUNK_BYTES = 256 * 1024
MAX_KEY_LENGTH = 512
_KEY = re.compile(rf"[A-Za-z0-9._/-]{{1,{MAX_KEY_LENGTH}}}")


class ObjectMissing(Exception):
    """No object has this key."""


def key_problem(key: str) -> str | None:
    """Why `key` cannot name an object (None: it can). Keys are paths of
    plain segments, so a local directory can hold them safely."""
    if not _KEY.fullmatch(key):
        return f"must be 1 to {MAX_KEY_LENGTH} characters of [A-Za-z0-9._/-]"
    if any(segment in ("", ".", "..") for segment in key.split("/")):
        return "must not have an empty, '.' or '..' segment"
    return None


def generation_prefix(generation_id: object) -> str:
    """Every key of a generation's files starts with this."""
    return f"{generation_id}/"


class StoredObject(Protocol):
    """An object opened for reading."""

    size: int
    # Names this version of the object (quoted, as an HTTP ETag).
    etag: str

    def chunks(self) -> AsyncIterator[bytes]:
        """The bytes, CHUNK_BYTES at a time; the object is closed at the end
        or when the iteration is abandoned."""
        ...


class MediaStore(Protocol):
    async def prepare(self) -> None:
        """Make the store ready to be written (the writer calls it at start)."""
        ...

    async def put(self, key: str, data: bytes, content_type: str) -> None:
        """Write (or replace) the object at `key`."""
        ...

    async def open(self, key: str) -> StoredObject:
        """The object at `key` for reading; ObjectMissing if there is none."""
        ...

    async def delete(self, key: str) -> None:
        """Remove the object at `key`, if there is one."""
        ...

    async def close(self) -> None: ...


def open_store(settings: MediaSettings) -> MediaStore:
    """The store the settings name (boto3 is imported only for "s3")."""
    if settings.store == "s3":
        from leo_mesh.media.s3 import S3Store

        return S3Store.from_settings(settings)
    from leo_mesh.media.local import LocalStore

    return LocalStore(settings.local_dir, io_threads=settings.io_threads)

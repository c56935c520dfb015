"""Saving a generation's files: names, extensions, and writing a download
so that a file is either whole or absent."""

from __future__ import annotations

import mimetypes
import os
from pathlib import Path
from typing import IO

EXTENSIONS = {
    "image/png": ".png",
    "image/webp": ".webp",
    "image/jpeg": ".jpg",
    "image/gif": ".gif",
    "video/mp4": ".mp4",
}


def extension(content_type: str) -> str:
    """The file extension of a media type (".bin" for one nobody knows)."""
    known = EXTENSIONS.get(content_type) or mimetypes.guess_extension(content_type)
    return known or ".bin"


def file_name(generation_id: str, index: int, content_type: str) -> str:
    """A file's name when it is saved into a directory: "<id>-<index>.<ext>"."""
    return f"{generation_id}-{index}{extension(content_type)}"


def target(path: str | os.PathLike[str], generation_id: str, index: int, content_type: str) -> Path:
    """Where a download goes: into `path` if it is a directory, else `path` itself."""
    where = Path(path)
    return where / file_name(generation_id, index, content_type) if where.is_dir() else where


class PartialFile:
    """A file written beside its final name and moved there once complete;
    abandoned (an error, an interruption), it is removed."""

    def __init__(self, final: Path) -> None:
        self.final = final
        self._partial = final.with_name(f".{final.name}.partial")
        self._file: IO[bytes] | None = None

    def __enter__(self) -> IO[bytes]:
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self._partial, "wb")
        return self._file

    def __exit__(self, exc_type, exc, tb) -> None:
        assert self._file is not None
        self._file.close()
        if exc_type is None:
            os.replace(self._partial, self.final)
        else:
            self._partial.unlink(missing_ok=True)

"""Opaque page tokens for ListGenerations: a keyset position, not an offset,
so pages stay correct while new generations arrive."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from leo_mesh.db.rows import GenerationRow
from leo_mesh.errors import invalid
from leo_mesh.rules import Status

# Far above any token this API makes (about 110 characters).
TOKEN_MAX_LENGTH = 512


def encode(last: GenerationRow, status: Status | None) -> str:
    position = {"c": last.created_at.isoformat(), "i": str(last.id), "s": status.value if status else ""}
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(token: str, status: Status | None) -> tuple[datetime, uuid.UUID] | None:
    """The position after which the next page starts (None: first page)."""
    if not token:
        return None
    not_ours = invalid("page_token", "is not a token this API gave out")
    if len(token) > TOKEN_MAX_LENGTH:
        raise not_ours
    try:
        position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
    except (ValueError, binascii.Error, UnicodeDecodeError, RecursionError):
        raise not_ours from None
    if not isinstance(position, dict) or not all(isinstance(position.get(k), str) for k in ("c", "i", "s")):
        raise not_ours
    try:
        created_at, row_id = datetime.fromisoformat(position["c"]), uuid.UUID(position["i"])
    except ValueError:
        raise not_ours from None
    if created_at.tzinfo is None:
        raise not_ours
    if position["s"] != (status.value if status else ""):
        raise invalid("page_token", "was made for another status filter")
    return created_at, row_id

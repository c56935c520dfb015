"""Opaque page tokens for ListGenerations: a keyset position, not an offset,
so pages stay correct while new generations arrive."""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from datetime import datetime

from leo_mesh.db.models import Generation, GenerationStatus
from leo_mesh.status import FieldViolation, invalid_argument


def encode(last: Generation, status: GenerationStatus | None) -> str:
    position = {"c": last.created_at.isoformat(), "i": str(last.id), "s": status.value if status else ""}
    return base64.urlsafe_b64encode(json.dumps(position, separators=(",", ":")).encode()).decode().rstrip("=")


def decode(token: str, status: GenerationStatus | None) -> tuple[datetime, uuid.UUID] | None:
    """The position after which the next page starts (None: first page)."""
    if not token:
        return None
    try:
        position = json.loads(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)))
        after = datetime.fromisoformat(position["c"]), uuid.UUID(position["i"])
        made_for = position["s"]
    except (ValueError, KeyError, TypeError, binascii.Error, UnicodeDecodeError):
        raise invalid_argument([FieldViolation("page_token", "is not a token this API gave out")]) from None
    if made_for != (status.value if status else ""):
        raise invalid_argument([FieldViolation("page_token", "was made for another status filter")])
    return after

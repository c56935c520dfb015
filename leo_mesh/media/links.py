"""Signed links: a browser's img or video tag fetches a generated file, and
its EventSource watches a generation, through the public API without an
API key.

A link is the HTTP path of GetGenerationAsset (a file) or WatchGeneration
(a watch) with `expires` (Unix seconds) and `signature`, the HMAC-SHA256 of
"<path>\\n<expires>" under a key every api_server (and the callback_server,
for webhook bodies) shares: a link opens only what its path names.
Expiries are rounded up to a step of a tenth of the lifetime, so a
generation read twice within the step gives the same links (caches and
watches see no change).
"""

from __future__ import annotations

import base64
import hmac
import logging
import math
import secrets
import time
from collections.abc import Callable

from leo_mesh.errors import AssetLinkExpired, AssetLinkInvalid
from leo_mesh.media.settings import MediaSettings

log = logging.getLogger("leo.media")


def asset_path(generation_id: object, index: int) -> str:
    """The HTTP path of a generation's file (GetGenerationAsset's binding)."""
    return f"/v1/generations/{generation_id}/assets/{index}"


def watch_path(generation_id: object) -> str:
    """The HTTP path of a generation's watch (WatchGeneration's binding)."""
    return f"/v1/generations/{generation_id}:watch"


class AssetLinks:
    def __init__(self, key: bytes, *, base_url: str, ttl_s: int, clock: Callable[[], float] = time.time) -> None:
        self._key = key
        self._base_url = base_url.rstrip("/")
        self.ttl_s = ttl_s
        self._step_s = max(60, ttl_s // 10)
        self._clock = clock

    @classmethod
    def from_settings(cls, settings: MediaSettings) -> AssetLinks:
        secret = settings.url_signing_key
        if secret is None:
            log.warning("MEDIA_URL_SIGNING_KEY is not set: links signed by this process work only here, until it stops")
        key = secret.get_secret_value().encode() if secret else secrets.token_bytes(32)
        return cls(key, base_url=settings.public_base_url, ttl_s=settings.url_ttl_s)

    def _signature(self, path: str, expires: int) -> str:
        text = f"{path}\n{expires}".encode()
        digest = hmac.digest(self._key, text, "sha256")  # one-shot: a list page signs dozens
        return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()

    def _link(self, path: str, expires: int) -> str:
        # Both values are URL-safe as they are (an integer, unpadded base64url).
        return f"{self._base_url}{path}?expires={int(expires)}&signature={self._signature(path, expires)}"

    def _check(self, path: str, expires: int, signature: str) -> int:
        expected = self._signature(path, expires)
        if not hmac.compare_digest(expected.encode(), signature.encode()):
            raise AssetLinkInvalid()
        left = expires - self._clock()
        if left <= 0:
            raise AssetLinkExpired()
        return math.ceil(left)

    def expiry(self) -> int:
        """When a link made now expires: at least ttl_s from now, on a step."""
        return math.ceil((self._clock() + self.ttl_s) / self._step_s) * self._step_s

    def url(self, generation_id: object, index: int, expires: int) -> str:
        """The link to a generation's file."""
        return self._link(asset_path(generation_id, index), expires)

    def check(self, generation_id: object, index: int, expires: int, signature: str) -> int:
        """The seconds the file's link has left; AssetLinkInvalid if the
        signature does not match the path and expiry, AssetLinkExpired once past it."""
        return self._check(asset_path(generation_id, index), expires, signature)

    def watch_url(self, generation_id: object, expires: int) -> str:
        """The link to a generation's watch (server-sent events)."""
        return self._link(watch_path(generation_id), expires)

    def check_watch(self, generation_id: object, expires: int, signature: str) -> int:
        """As check, for a watch link."""
        return self._check(watch_path(generation_id), expires, signature)

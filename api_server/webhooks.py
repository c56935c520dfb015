"""Webhooks: Standard Webhooks signing, URL checks, and the sender loop.

The sender runs in every api_server process, like the Dispatcher: due
deliveries are claimed with FOR UPDATE SKIP LOCKED (WebhookStore.claim_due),
so replicas share the work and, when nothing fails, each webhook is sent
exactly once. Polling finds deliveries that other processes queued.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import hmac
import ipaddress
import logging
import socket
import time
from urllib.parse import urlsplit

import httpx
from pydantic import Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from api_server.backoff import backoff_delay
from api_server.outbox import OutboxLoop
from leo_mesh.db.webhooks import ClaimedDelivery, Outcome, WebhookStore

log = logging.getLogger("api_server.webhooks")

URL_MAX_LENGTH = 2048
RESOLVE_TIMEOUT_S = 2.0
BATCH_SIZE = 50
SECRET_PREFIX = "whsec_"

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class WebhookSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="WEBHOOK_", extra="ignore")

    max_attempts: int = Field(6, ge=1)
    backoff_base_s: float = Field(2.0, gt=0)
    backoff_cap_s: float = Field(300.0, gt=0)
    # Deadline of one POST, connecting included.
    timeout_s: float = Field(10.0, gt=0)
    poll_interval_s: float = Field(1.0, gt=0)
    # Lets webhook URLs reach loopback and private networks (tests, dev).
    allow_private_urls: bool = False

    @model_validator(mode="after")
    def _cap_not_below_base(self):
        if self.backoff_cap_s < self.backoff_base_s:
            raise ValueError("WEBHOOK_BACKOFF_CAP_S must be at least WEBHOOK_BACKOFF_BASE_S")
        return self

    @property
    def claim_lease_s(self) -> float:
        """How long a claimed delivery stays invisible to other senders while
        its attempt (address check and POST) is in flight."""
        return 2 * (RESOLVE_TIMEOUT_S + self.timeout_s) + 5


# --- Signing (https://www.standardwebhooks.com) ---


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """The webhook-signature header: "v1," + base64 HMAC-SHA256 of
    "{msg_id}.{timestamp}.{body}", keyed with the secret's decoded bytes."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    digest = hmac.new(key, f"{msg_id}.{timestamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode("ascii")


def verify(
    secret: str,
    msg_id: str,
    timestamp: int,
    body: bytes,
    signature_header: str,
    *,
    tolerance_s: int = 300,
    now: int | None = None,
) -> bool:
    """What a receiver does: true if one of the header's space-separated
    signatures matches and the timestamp is within tolerance_s of now."""
    now = int(time.time()) if now is None else now
    if abs(now - timestamp) > tolerance_s:
        return False
    expected = sign(secret, msg_id, timestamp, body)
    return any(hmac.compare_digest(expected, candidate) for candidate in signature_header.split())


# --- URL checks (no requests to the service's own networks) ---


def _non_public(address: IpAddress) -> str | None:
    """Why an address must not be reached, or None if it is public."""
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        address = address.ipv4_mapped
    checks = [
        ("loopback", address.is_loopback),
        ("link-local", address.is_link_local),
        ("private", address.is_private),
        ("multicast", address.is_multicast),
        ("reserved", address.is_reserved),
        ("unspecified", address.is_unspecified),
        ("not globally routable", not address.is_global),
    ]
    return next((kind for kind, matches in checks if matches), None)


async def _resolve(host: str, port: int) -> list[IpAddress]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.wait_for(
        asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=RESOLVE_TIMEOUT_S
    )
    # Drop any IPv6 scope ("fe80::1%eth0"): it does not change the class.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check_url(url: str, *, allow_private: bool) -> str | None:
    """Why a webhook URL is refused, or None if it may be used.

    Only absolute http(s) URLs without credentials, on a host that
    resolves; unless allow_private, every address it resolves to must be
    public.
    """
    if len(url) > URL_MAX_LENGTH:
        return f"the URL is longer than {URL_MAX_LENGTH} characters"
    try:
        parts = urlsplit(url)
        port = parts.port or (443 if parts.scheme.lower() == "https" else 80)
    except ValueError as exc:
        return f"the URL is malformed ({exc})"
    if parts.scheme.lower() not in ("http", "https"):
        return "the URL must be http or https"
    if not parts.hostname:
        return "the URL has no host"
    if parts.username is not None or parts.password is not None:
        return "the URL must not contain credentials"
    host = parts.hostname
    try:
        addresses = await _resolve(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        return f"the host {host} cannot be resolved ({str(exc) or 'timed out'})"
    if allow_private:
        return None
    for address in addresses:
        kind = _non_public(address)
        if kind is not None:
            return f"the host {host} resolves to {address}, which is {kind}"
    return None


# --- Sending ---


class WebhookSender(OutboxLoop):
    def __init__(self, store: WebhookStore, settings: WebhookSettings) -> None:
        super().__init__(poll_interval_s=settings.poll_interval_s, log=log)
        self._store = store
        self._settings = settings
        # No proxies from the environment: the checked address is the one reached.
        self._client = httpx.AsyncClient(follow_redirects=False, trust_env=False, timeout=settings.timeout_s)

    async def round(self) -> bool:
        return await self.deliver_due()

    async def run(self) -> None:
        """Deliver until stopped, then close the HTTP client."""
        try:
            await super().run()
        finally:
            await self._client.aclose()

    async def deliver_due(self) -> bool:
        """One round: claim due deliveries and send them. True if the batch was full."""
        settings = self._settings
        claimed = await self._store.claim_due(
            limit=BATCH_SIZE, lease_s=settings.claim_lease_s, max_attempts=settings.max_attempts
        )
        if claimed:
            await asyncio.gather(*(self._attempt(item) for item in claimed))
        return len(claimed) >= BATCH_SIZE

    async def _attempt(self, claimed: ClaimedDelivery) -> None:
        delivery, settings = claimed.delivery, self._settings
        attempt = delivery.attempts
        started = time.perf_counter()
        status_code, error = await self._post(claimed)
        ms = round((time.perf_counter() - started) * 1000)
        delay = None
        if status_code is not None and 200 <= status_code < 300:
            outcome, event = Outcome.DELIVERED, "webhook delivered"
        elif status_code == 410 or attempt >= settings.max_attempts:
            outcome, event = Outcome.FAILED, "webhook failed"
        else:
            outcome, event = Outcome.RETRY, "webhook retry"
            delay = backoff_delay(attempt, base_s=settings.backoff_base_s, cap_s=settings.backoff_cap_s)
        await self._store.record_attempt(
            delivery.id, attempt, status_code=status_code, error=error, ms=ms, outcome=outcome, retry_delay_s=delay
        )
        log.log(
            logging.INFO if outcome is Outcome.DELIVERED else logging.WARNING,
            event,
            extra={
                "delivery_id": str(delivery.id),
                "generation_id": str(delivery.generation_id),
                "attempt": attempt,
                "status_code": status_code,
                "error": error,
                "delay_s": None if delay is None else round(delay, 3),
                "ms": ms,
            },
        )

    async def _post(self, claimed: ClaimedDelivery) -> tuple[int | None, str | None]:
        """POST the stored payload once; returns (status code, error)."""
        delivery, timeout_s = claimed.delivery, self._settings.timeout_s
        # Checked again now: the name may resolve elsewhere than at create time.
        refused = await check_url(delivery.url, allow_private=self._settings.allow_private_urls)
        if refused is not None:
            return None, f"refused: {refused}"
        body = delivery.payload.encode()
        msg_id = str(delivery.id)
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": msg_id,
            "webhook-timestamp": str(timestamp),
            "webhook-signature": sign(claimed.secret, msg_id, timestamp, body),
        }
        try:
            async with asyncio.timeout(timeout_s):
                # Streamed so the response body is never read.
                async with self._client.stream("POST", delivery.url, content=body, headers=headers) as response:
                    status_code = response.status_code
        except (TimeoutError, httpx.TimeoutException):
            return None, f"timed out after {timeout_s:g} s"
        except httpx.HTTPError as exc:
            return None, type(exc).__name__ + (f": {exc}" if str(exc) else "")
        return status_code, None if 200 <= status_code < 300 else f"HTTP {status_code}"

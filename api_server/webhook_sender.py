"""The webhook sender: signed POSTs of queued deliveries, with retries.

It runs in every api_server process, like the Dispatcher: due deliveries
are claimed with FOR UPDATE SKIP LOCKED (WebhookStore.claim_due), so
replicas share the work and, when nothing fails, each webhook is sent
exactly once. Signatures follow Standard Webhooks (its reference library).
Logs name the target's host only: a URL's path or query may hold a secret.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from datetime import UTC, datetime

import httpx
from opentelemetry.trace import SpanKind
from standardwebhooks.webhooks import Webhook

from api_server import webhook_urls
from api_server.outbox import OutboxLoop
from api_server.settings import WebhookSettings
from leo_mesh import metrics, rules
from leo_mesh.db.webhooks import ClaimedDelivery, WebhookStore
from leo_mesh.telemetry import tracing

log = logging.getLogger("api_server.webhooks")

BATCH_SIZE = 50


def signed_headers(delivery: ClaimedDelivery, now: datetime) -> dict[str, str]:
    """Standard Webhooks headers for one attempt (the id is the delivery's,
    the same on every attempt, so receivers can deduplicate)."""
    msg_id = str(delivery.id)
    return {
        "content-type": "application/json",
        "webhook-id": msg_id,
        "webhook-timestamp": str(int(now.timestamp())),
        "webhook-signature": Webhook(delivery.secret).sign(msg_id, now, delivery.payload),
    }


class WebhookSender(OutboxLoop):
    def __init__(
        self,
        store: WebhookStore,
        settings: WebhookSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
        resolver: webhook_urls.Resolver = webhook_urls.resolve,
        rng: random.Random | None = None,
    ) -> None:
        super().__init__(poll_interval_s=settings.poll_interval_s, log=log)
        self._store = store
        self._settings = settings
        self._resolver = resolver
        self._rng = rng
        # No proxies from the environment: the checked address is the one reached.
        self._client = httpx.AsyncClient(
            follow_redirects=False, trust_env=False, timeout=settings.timeout_s, transport=transport
        )

    async def round(self) -> bool:
        return await self.deliver_due()

    async def close(self) -> None:
        await self._client.aclose()

    async def deliver_due(self) -> bool:
        """One round: claim due deliveries and attempt each. True if the batch was full."""
        settings = self._settings
        claimed = await self._store.claim_due(
            limit=BATCH_SIZE, lease_s=settings.claim_lease_s, max_attempts=settings.max_attempts
        )
        if claimed:
            await asyncio.gather(*(self._attempt(delivery) for delivery in claimed))
        return len(claimed) >= BATCH_SIZE

    async def _attempt(self, delivery: ClaimedDelivery) -> None:
        """One attempt, in a span continuing the generation's create trace.
        (No trace context is sent to the customer's endpoint.)"""
        generation_id = str(delivery.generation_id)
        with tracing.span(
            "webhook POST",
            parent=delivery.trace_parent,
            kind=SpanKind.CLIENT,
            generation_id=generation_id,
            attributes={"http.request.method": "POST", "leo.webhook.attempt": delivery.attempt},
        ) as span:
            tracing.about_generation(generation_id)
            outcome = await self._attempt_in_span(delivery)
            if span is not None:
                span.set_attribute("leo.webhook.outcome", outcome.value)

    async def _attempt_in_span(self, delivery: ClaimedDelivery) -> rules.Delivery:
        started = time.perf_counter()
        status_code, error, host = await self._post(delivery)
        elapsed_s = time.perf_counter() - started
        ms = round(elapsed_s * 1000)
        metrics.WEBHOOK_LATENCY.observe(elapsed_s)
        decision = rules.after_webhook_attempt(status_code, delivery.attempt, self._settings.retry, self._rng)
        metrics.WEBHOOK_DELIVERIES.labels(decision.outcome.value).inc()
        await self._store.record_attempt(
            delivery.id, delivery.attempt, status_code=status_code, error=error, ms=ms, decision=decision
        )
        delivered = decision.outcome is rules.Delivery.DELIVERED
        log.log(
            logging.INFO if delivered else logging.WARNING,
            f"webhook {decision.outcome.value}",
            extra={
                "delivery_id": str(delivery.id),
                "generation_id": str(delivery.generation_id),
                "host": host,
                "attempt": delivery.attempt,
                "status_code": status_code,
                "error": error,
                "delay_s": None if decision.delay_s is None else round(decision.delay_s, 3),
                "ms": ms,
            },
        )
        return decision.outcome

    async def _post(self, delivery: ClaimedDelivery) -> tuple[int | None, str | None, str | None]:
        """POST the stored payload once; returns (status code, error, host).

        Whatever goes wrong is an error of this attempt, recorded against it:
        nothing raised here may end the sender.
        """
        host = None
        try:
            # Checked again now: the name may resolve elsewhere than at create time.
            target = await webhook_urls.check(
                delivery.url, allow_private=self._settings.allow_private_urls, resolver=self._resolver
            )
            host = target.url.host
            request = self._client.build_request(
                "POST",
                target.request_url(),
                content=delivery.payload.encode(),
                headers={**signed_headers(delivery, datetime.now(UTC)), "host": target.host_header},
                extensions={"sni_hostname": target.url.host},
            )
            async with asyncio.timeout(self._settings.timeout_s):
                # Streamed so that the response body is never read.
                response = await self._client.send(request, stream=True)
                await response.aclose()
        except webhook_urls.UrlRefused as exc:
            return None, f"refused: {exc}", host
        except (TimeoutError, httpx.TimeoutException):
            return None, f"timed out after {self._settings.timeout_s:g} s", host
        except Exception as exc:
            return None, type(exc).__name__ + (f": {exc}" if str(exc) else ""), host
        status_code = response.status_code
        return status_code, None if 200 <= status_code < 300 else f"HTTP {status_code}", host

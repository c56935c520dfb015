"""Standard Webhooks signatures: what the sender puts on a delivery is what
the reference library (standardwebhooks) verifies, and a vector computed by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from datetime import UTC, datetime

import pytest
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from api_server.webhook_sender import signed_headers
from leo_mesh.db.webhooks import ClaimedDelivery

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
BODY = '{"type":"generation.completed","data":{"generationId":"x"}}'
WHEN = datetime(2026, 11, 28, 12, 0, 0, tzinfo=UTC)


def delivery(secret: str = SECRET, body: str = BODY) -> ClaimedDelivery:
    return ClaimedDelivery(uuid.UUID(int=7), uuid.UUID(int=8), "https://h/x", body, 1, secret)


def test_known_vector():
    headers = signed_headers(delivery(), WHEN)
    timestamp = int(WHEN.timestamp())
    signed = f"{uuid.UUID(int=7)}.{timestamp}.".encode() + BODY.encode()
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    assert headers["webhook-signature"] == "v1," + expected
    assert headers["webhook-id"] == str(uuid.UUID(int=7)) and headers["webhook-timestamp"] == str(timestamp)


def test_the_reference_library_verifies_what_we_send():
    headers = signed_headers(delivery(), datetime.now(UTC))
    assert Webhook(SECRET).verify(BODY, headers) is not None


def test_any_of_several_signatures():
    """During a secret rotation a receiver may see several signatures."""
    now = datetime.now(UTC)
    other = signed_headers(delivery("whsec_" + base64.b64encode(b"\x01" * 32).decode()), now)["webhook-signature"]
    headers = signed_headers(delivery(), now)
    headers["webhook-signature"] = f"{other} {headers['webhook-signature']}"
    assert Webhook(SECRET).verify(BODY, headers) is not None


@pytest.mark.parametrize("tamper", ["body", "timestamp", "id", "secret"])
def test_tampering_fails(tamper):
    now = datetime.now(UTC)
    headers, body, secret = signed_headers(delivery(), now), BODY, SECRET
    if tamper == "body":
        body = BODY + " "
    elif tamper == "timestamp":
        headers["webhook-timestamp"] = str(int(now.timestamp()) + 1)
    elif tamper == "id":
        headers["webhook-id"] += "x"
    else:
        secret = "whsec_" + base64.b64encode(b"\x02" * 32).decode()
    with pytest.raises(WebhookVerificationError):
        Webhook(secret).verify(body, headers)


def test_stale_timestamp_fails():
    headers = signed_headers(delivery(), datetime(2020, 1, 1, tzinfo=UTC))
    with pytest.raises(WebhookVerificationError):
        Webhook(SECRET).verify(BODY, headers)

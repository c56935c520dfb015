"""Standard Webhooks signatures: sign, verify, and a vector computed by hand."""

from __future__ import annotations

import base64
import hashlib
import hmac

from api_server.webhooks import sign, verify

KEY = bytes(range(32))
SECRET = "whsec_" + base64.b64encode(KEY).decode()
MSG_ID = "msg_2KWPBgLlAfxdpx2AI54pPJ85f4W"
TIMESTAMP = 1_700_000_000
BODY = b'{"type":"generation.completed","data":{"generationId":"x"}}'


def test_known_vector():
    signed = f"{MSG_ID}.{TIMESTAMP}.".encode() + BODY
    expected = base64.b64encode(hmac.new(KEY, signed, hashlib.sha256).digest()).decode()
    assert sign(SECRET, MSG_ID, TIMESTAMP, BODY) == "v1," + expected


def test_round_trip():
    signature = sign(SECRET, MSG_ID, TIMESTAMP, BODY)
    assert verify(SECRET, MSG_ID, TIMESTAMP, BODY, signature, now=TIMESTAMP + 10)


def test_any_of_several_signatures():
    """During a secret rotation a receiver may see several signatures."""
    other = sign("whsec_" + base64.b64encode(b"\x01" * 32).decode(), MSG_ID, TIMESTAMP, BODY)
    header = f"{other} {sign(SECRET, MSG_ID, TIMESTAMP, BODY)}"
    assert verify(SECRET, MSG_ID, TIMESTAMP, BODY, header, now=TIMESTAMP)


def test_tampering_fails():
    signature = sign(SECRET, MSG_ID, TIMESTAMP, BODY)
    assert not verify(SECRET, MSG_ID, TIMESTAMP, BODY + b" ", signature, now=TIMESTAMP)
    assert not verify(SECRET, MSG_ID, TIMESTAMP + 1, BODY, signature, now=TIMESTAMP)
    assert not verify(SECRET, MSG_ID + "x", TIMESTAMP, BODY, signature, now=TIMESTAMP)
    other_secret = "whsec_" + base64.b64encode(b"\x02" * 32).decode()
    assert not verify(other_secret, MSG_ID, TIMESTAMP, BODY, signature, now=TIMESTAMP)


def test_stale_timestamp_fails():
    signature = sign(SECRET, MSG_ID, TIMESTAMP, BODY)
    assert not verify(SECRET, MSG_ID, TIMESTAMP, BODY, signature, now=TIMESTAMP + 301)
    assert verify(SECRET, MSG_ID, TIMESTAMP, BODY, signature, now=TIMESTAMP + 300)

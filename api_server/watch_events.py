"""Event ids of WatchGeneration's messages, and resuming a watch after one.

Each message names the state it carries: its event_id is a digest of the
generation as the API shows it, signed links left out (they are signed
again as time passes; the state is the same). Two reads of an unchanged
generation give the same id, and every change a client can see gives
another, fields added to Generation later included.

A watch that names the last id it got (HTTP: an EventSource's
Last-Event-ID header; gRPC: last-event-id metadata) skips the current state
when it is that one, so it sends the state only once it changed. When that
state was final, the watch has nothing more to send: it ends at once, with
no message and ENDED_HEADER in its initial metadata, which the edge turns
into the 204 that tells an EventSource to stop reconnecting
(envoy/edge.lua).
"""

from __future__ import annotations

import base64
import hashlib

from leo.generation.v1 import generation_pb2

LAST_EVENT_ID_HEADER = "last-event-id"
ENDED_HEADER = "leo-watch-ended"
# 128 bits of SHA-256: ids of one generation's states never meet by chance.
DIGEST_BYTES = 16


def event_id(generation: generation_pb2.Generation) -> str:
    """The id of this state of the generation: unpadded base64url, 22 characters."""
    shown = generation_pb2.Generation()
    shown.CopyFrom(generation)
    for image in shown.images:
        image.ClearField("url")
    for asset in shown.assets:
        asset.ClearField("url")
        asset.ClearField("url_expire_time")
    digest = hashlib.sha256(shown.SerializeToString(deterministic=True)).digest()[:DIGEST_BYTES]
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode()


def event(generation: generation_pb2.Generation) -> generation_pb2.WatchGenerationResponse:
    """The message that carries this state."""
    return generation_pb2.WatchGenerationResponse(generation=generation, event_id=event_id(generation))

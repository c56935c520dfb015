"""Event ids of watch messages (api_server.watch_events): pure logic."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from api_server.watch_events import event, event_id
from leo.generation.v1 import generation_pb2


def generation(**fields) -> generation_pb2.Generation:
    made = generation_pb2.Generation(
        generation_id="3fa85f64-5717-4562-b3fc-2c963f66afa6",
        status=generation_pb2.STATUS_COMPLETE,
        prompt="a kite",
        width=64,
        height=64,
        images=[generation_pb2.Image(url="https://api.test/a?expires=1&signature=s", width=64, height=64)],
        assets=[generation_pb2.Asset(url="https://api.test/a?expires=1&signature=s", content_type="image/png")],
        progress=100,
        **fields,
    )
    made.assets[0].url_expire_time.FromSeconds(1)
    return made


def test_an_id_is_22_url_safe_characters_and_the_message_carries_it():
    state = generation()
    assert re.fullmatch(r"[A-Za-z0-9_-]{22}", event_id(state))
    assert event(state).event_id == event_id(state) and event(state).generation == state


@given(expires=st.integers(2, 253402300799), signature=st.text(min_size=1, max_size=50))
def test_links_signed_again_are_the_same_state(expires, signature):
    again = generation()
    url = f"https://api.test/a?expires={expires}&signature={signature}"
    again.images[0].url = url
    again.assets[0].url = url
    again.assets[0].url_expire_time.FromSeconds(expires)
    assert event_id(again) == event_id(generation())


CHANGES = [
    lambda g: setattr(g, "status", generation_pb2.STATUS_FAILED),
    lambda g: setattr(g, "progress", 99),
    lambda g: g.ClearField("progress"),
    lambda g: setattr(g, "queue_position", 1),
    lambda g: setattr(g, "attempts", 2),
    lambda g: setattr(g, "failure_reason", "x"),
    lambda g: g.update_time.FromSeconds(5),
    lambda g: g.complete_time.FromSeconds(5),
    lambda g: setattr(g.assets[0], "byte_size", 10),
    lambda g: g.images.add(url="u"),
    lambda g: setattr(g, "generation_id", "4fa85f64-5717-4562-b3fc-2c963f66afa6"),
]


@given(changes=st.lists(st.sampled_from(range(len(CHANGES))), min_size=1, unique=True))
def test_any_change_a_client_sees_is_another_state(changes):
    changed = generation()
    for index in changes:
        CHANGES[index](changed)
    assert event_id(changed) != event_id(generation())

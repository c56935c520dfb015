"""Page tokens: what the API made decodes; anything else is a 400 naming
page_token, never a 500 (wrong types, deep nesting, huge tokens)."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from api_server import paging
from leo_mesh.db.rows import GenerationRow
from leo_mesh.errors import InvalidArgument
from leo_mesh.rules import Model, Status

NOW = datetime(2026, 11, 29, 12, 0, 0, 123000, tzinfo=UTC)
# Fixed: test ids must be the same in every process that collects them.
ROW_ID = "8f1f5e7e-3c8e-4b8e-9d5e-7f0a1b2c3d4e"


def token_of(value: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).decode().rstrip("=")


def raw_token(text: str) -> str:
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


def last_row() -> GenerationRow:
    return GenerationRow(
        uuid.uuid4(), uuid.uuid4(), "o", Status.PENDING, "p", Model.SD, 64, 64, (), None, 0, NOW, NOW, None, None
    )


@pytest.mark.parametrize("status", [None, Status.COMPLETE])
def test_round_trip(status):
    row = last_row()
    assert paging.decode(paging.encode(row, status), status) == (row.created_at, row.id)


BAD = [
    "!!!",
    raw_token("not json"),
    raw_token("\x00"),
    token_of([]),
    token_of("a string"),
    token_of({"c": NOW.isoformat(), "i": 5, "s": ""}),
    token_of({"c": NOW.isoformat(), "i": [], "s": ""}),
    token_of({"c": NOW.isoformat(), "i": {}, "s": ""}),
    token_of({"c": 1, "i": ROW_ID, "s": ""}),
    token_of({"c": NOW.isoformat(), "i": ROW_ID, "s": None}),
    token_of({"c": NOW.isoformat(), "i": "x", "s": ""}),
    token_of({"c": "yesterday", "i": ROW_ID, "s": ""}),
    token_of({"c": "2026-11-29T12:00:00", "i": ROW_ID, "s": ""}),  # no time zone
    token_of({"i": ROW_ID, "s": ""}),
    raw_token("[" * 5000),
    raw_token('{"c":' * 5000),
    "A" * 100_000,
    base64.urlsafe_b64encode(b"\xff\xfe").decode(),
]


@pytest.mark.parametrize("token", BAD)
def test_anything_else_is_a_field_error(token):
    with pytest.raises(InvalidArgument) as caught:
        paging.decode(token, None)
    assert [v.field for v in caught.value.violations] == ["page_token"]


def test_a_token_of_another_filter_is_refused():
    token = paging.encode(last_row(), Status.PENDING)
    with pytest.raises(InvalidArgument) as caught:
        paging.decode(token, None)
    assert "another status filter" in caught.value.message


@given(st.text(max_size=300))
def test_no_text_gets_anything_but_a_position_or_a_field_error(token):
    try:
        paging.decode(token, None)
    except InvalidArgument as error:
        assert error.violations[0].field == "page_token"


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.text(max_size=20),
        lambda c: st.lists(c) | st.dictionaries(st.text(max_size=3), c),
        max_leaves=20,
    )
)
def test_no_json_value_gets_anything_but_a_position_or_a_field_error(value):
    try:
        paging.decode(token_of(value), None)
    except InvalidArgument as error:
        assert error.violations[0].field == "page_token"

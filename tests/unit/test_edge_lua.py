"""envoy/edge.lua's pure functions, run in LuaJIT (the runtime Envoy embeds).

Envoy's own behaviour with the script is in tests/e2e/test_envoy_edge.py.
"""

from __future__ import annotations

import base64
import hashlib
import json
import string

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lupa import luajit21

from leo_mesh import envoy_config as envoy


@pytest.fixture(scope="module")
def edge():
    lua = luajit21.LuaRuntime()
    lua.execute(envoy.EDGE_LUA.read_text())
    return lua.globals().edge


# --- SHA-256 --------------------------------------------------------------


@pytest.mark.parametrize("size", [0, 1, 3, 55, 56, 63, 64, 65, 119, 120, 1000])
def test_sha256_at_the_padding_boundaries(edge, size):
    text = "k" * size
    assert edge.sha256_hex(text) == hashlib.sha256(text.encode()).hexdigest()


@settings(max_examples=300)
@given(st.text(alphabet=st.characters(min_codepoint=1, max_codepoint=0x7F), max_size=300))
def test_sha256_matches_hashlib(edge, text):
    assert edge.sha256_hex(text) == hashlib.sha256(text.encode()).hexdigest()


# --- rate-limit bucket ----------------------------------------------------

KEY = "leo_" + "A1b2" * 10 + "xyz"


@pytest.mark.parametrize(
    "authorization",
    [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER  {KEY} ", f"Bearer \t{KEY}"],
)
def test_a_bearer_key_is_its_hash(edge, authorization):
    bucket = edge.rate_limit_bucket(authorization)
    assert bucket == hashlib.sha256(KEY.encode()).hexdigest()
    assert KEY not in bucket


@pytest.mark.parametrize("authorization", [None, "", "Bearer", "Bearer ", "Bearer   ", "Basic dXNlcjpwYXNz", KEY])
def test_anything_else_is_anonymous(edge, authorization):
    assert edge.rate_limit_bucket(authorization) == "anonymous"
    assert edge.rate_limit_bucket(authorization, "/v1/generations?pageSize=5") == "anonymous"


ASSET = "/v1/generations/3fa85f64-5717-4562-b3fc-2c963f66afa6/assets/0"


@pytest.mark.parametrize(
    "query", ["?expires=1800000000&signature=Sig-_0", "?signature=Sig-_0&expires=1", "?x=1&signature=Sig-_0&y"]
)
def test_a_signed_link_without_a_key_is_its_signatures_bucket(edge, query):
    bucket = edge.rate_limit_bucket(None, ASSET + query)
    assert bucket == "link-" + hashlib.sha256(b"Sig-_0").hexdigest()
    # A key, when there is one, names the bucket.
    assert edge.rate_limit_bucket(f"Bearer {KEY}", ASSET + query) == hashlib.sha256(KEY.encode()).hexdigest()


@pytest.mark.parametrize(
    "path",
    [
        ASSET,
        ASSET + "?expires=1",
        ASSET + "?signature=",
        "/v1/generations/x?signature=s",
        "/other/assets/0?signature=s",
    ],
)
def test_no_signature_of_an_asset_link_is_anonymous(edge, path):
    assert edge.rate_limit_bucket(None, path) == "anonymous"


# --- headers --------------------------------------------------------------


@pytest.mark.parametrize(
    "name",
    ["#e", "x*y", "a|b", "!x", "x'y", "x^y", "x`y", "x~y", "x$y", "x%y", "x&y", "x+y", "X-Upper", "é", "x y", ""],
)
def test_names_grpc_forbids(edge, name):
    assert edge.header_problem(name, "1", False) == "gRPC metadata names are [0-9a-z_.-]"


@pytest.mark.parametrize("name", ["x-ok", "a.b_c-d", "0", "authorization", "idempotency-key", "x-request-id"])
def test_names_grpc_allows(edge, name):
    assert edge.header_problem(name, "any value at all", False) is None


# Measured against the api_server's gRPC library: what it decodes ...
BASE64 = ["", "YQ", "YQ=", "YQ==", "YWJj", "YWJjZA", "YWJjZA==", "a+/A", "0w", "YWI", "YWI=", "AQ"]
# ... and what it refuses with INTERNAL.
NOT_BASE64 = ["!!!", "Y", "Y===", "YWJjZ", "-_8", "YQ==,YQ", " YQ", "YQ ", "YQ=a", "Y=Q=", "YQ==YQ=="]
# ... and, since its bits past the last byte are not zero, refuses too.
NOT_BASE64 += ["00", "YR", "YR==", "YWJ", "YWJ=", "AB"]


@pytest.mark.parametrize("value", BASE64)
def test_bin_values_that_are_base64(edge, value):
    assert edge.is_base64(value)
    assert edge.header_problem("x-b-bin", value, True) is None


@pytest.mark.parametrize("value", NOT_BASE64)
def test_bin_values_that_are_not(edge, value):
    assert not edge.is_base64(value)
    assert edge.header_problem("x-b-bin", value, False) == "a -bin value must be base64"


def grpc_reads_as_base64(value: str) -> bool:
    """The reference: characters of the standard alphabet that decode to bytes
    which encode back to them (no spare bits set), at most two '=' after."""
    data = value.rstrip("=")
    if (
        len(value) - len(data) > 2
        or len(data) % 4 == 1
        or not set(data) <= set(string.ascii_letters + string.digits + "+/")
    ):
        return False
    return base64.b64encode(base64.b64decode(data + "=" * (-len(data) % 4))).decode().rstrip("=") == data


@settings(max_examples=300)
@given(st.text(alphabet="AQYZw0/+=-_ !", max_size=9))
def test_is_base64_agrees_with_the_reference(edge, value):
    assert bool(edge.is_base64(value)) == grpc_reads_as_base64(value)


@pytest.mark.parametrize(
    ("name", "value", "grpc", "allowed"),
    [
        ("grpc-timeout", "1S", False, True),
        ("grpc-timeout", "99999999n", True, True),
        ("grpc-timeout", "999999999n", True, False),
        ("grpc-timeout", "1s", True, False),
        ("grpc-timeout", "abc", False, False),
        ("grpc-accept-encoding", "gzip", True, True),
        ("grpc-accept-encoding", "gzip", False, False),
        ("grpc-encoding", "gzip", True, True),
        ("grpc-encoding", "gzip", False, False),
        ("grpc-encoding", "snappy", True, False),
        ("grpc-previous-rpc-attempts", "1", True, False),
        ("grpc-trace-bin", "AAAA", True, False),
        ("grpc-status", "0", False, False),
        ("grpc-anything", "x", True, False),
    ],
)
def test_grpc_own_headers(edge, name, value, grpc, allowed):
    assert (edge.header_problem(name, value, grpc) is None) is allowed


# --- JSON members named "" -------------------------------------------------


def without_empty_names(value):
    """The reference: what grpc-gateway's decoder keeps of a JSON value."""
    if isinstance(value, dict):
        return {name: without_empty_names(v) for name, v in value.items() if name != ""}
    if isinstance(value, list):
        return [without_empty_names(v) for v in value]
    return value


names = st.sampled_from(["", "", "prompt", "a", 'q"', "\\", "é", " "])
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(names, inner, max_size=4),
    max_leaves=20,
)
layouts = st.sampled_from([{}, {"indent": 2}, {"separators": (",", ":")}, {"separators": (" , ", " : ")}])


@settings(max_examples=150)
@given(value=json_values, layout=layouts, ascii_only=st.booleans())
def test_drop_empty_names_keeps_everything_else(edge, value, layout, ascii_only):
    text = json.dumps(value, ensure_ascii=ascii_only, **layout)
    stripped = edge.drop_empty_names(text)
    if stripped is None:  # nothing to drop
        assert without_empty_names(value) == value
    else:
        assert json.loads(stripped) == without_empty_names(value)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"prompt":"x","":1}', '{"prompt":"x"}'),
        ('{"":{"":[1,{"":2}]},"prompt":"y"}', '{"prompt":"y"}'),
        ('{"prompt":"z","extra":[{"":1,"b":{"":{}}}]}', '{"prompt":"z","extra":[{"b":{}}]}'),
        (' { "" : "a" , "prompt" : "q\\"\\"" } ', '{"prompt":"q\\"\\""}'),
        ('{"prompt":"\\"\\":"}', None),  # no member named "": left alone
        ('{"prompt":"x"}', None),
    ],
)
def test_drop_empty_names_examples(edge, text, expected):
    assert edge.drop_empty_names(text) == expected


@pytest.mark.parametrize(
    "text",
    [
        '{"prompt":"x","":}',
        '{"prompt":"x",""}',
        '{"":1',
        '{"":1}}',
        '{"":1} x',
        '{"":"unterminated}',
        "[" * 101 + '{"":1}',
    ],
)
def test_text_that_is_not_json_is_left_to_the_transcoder(edge, text):
    assert edge.drop_empty_names(text) is None


# --- limits ---------------------------------------------------------------


def test_the_header_limits(edge):
    assert (edge.MAX_HEADER_BYTES, edge.MAX_HEADERS) == (32 * 1024, 100)

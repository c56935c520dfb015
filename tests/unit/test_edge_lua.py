"""envoy/edge.lua's pure functions, run in LuaJIT (the runtime Envoy embeds).

Envoy's own behaviour with the script is in tests/e2e/test_envoy_edge.py.
"""

from __future__ import annotations

import base64
import hashlib
import itertools
import json
import string
import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lupa import luajit21

from api_server import auth, watch_events
from leo_mesh import envoy_config as envoy


def load_edge(**runtime):
    """The script as Envoy runs it: with the query fields of the protos."""
    lua = luajit21.LuaRuntime(**runtime)
    lua.execute(envoy.edge_lua())
    return lua.globals().edge


@pytest.fixture(scope="module")
def edge():
    return load_edge()


@pytest.fixture(scope="module")
def byte_edge():
    """Strings cross as bytes: for what is not UTF-8."""
    return load_edge(encoding=None)


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
    [f"Bearer {KEY}", f"bearer {KEY}", f"BEARER  {KEY} ", f"Bearer \t{KEY}", f"Bearer {KEY}\t"],
)
def test_a_bearer_key_is_its_hash(edge, authorization):
    bucket = edge.rate_limit_bucket(authorization)
    assert bucket == hashlib.sha256(KEY.encode()).hexdigest()
    assert KEY not in bucket


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer ",
        "Bearer   ",
        "Basic dXNlcjpwYXNz",
        KEY,
        # Keys the api_server does not read as keys: no bucket of their own,
        # whatever is around the key.
        f"Bearer {KEY}\u00a0",
        f"Bearer {KEY}\u00a0\u00a0",
        f"Bearer {KEY}\x1f",
        f"Bearer {KEY}, Bearer {KEY}",
        f"Bearer\t{KEY}",
        f"Bearer {KEY} x",
    ],
)
def test_anything_else_is_anonymous(edge, authorization):
    assert edge.rate_limit_bucket(authorization) == "anonymous"
    assert edge.rate_limit_bucket(authorization, "") == "anonymous"


AUTHORIZATION_TEXT = st.text(alphabet="Bb eEaArR\t\u00a0\x1f\x85=,/+~._-lo0é", max_size=16)


@settings(max_examples=500)
@given(prefix=st.sampled_from(["Bearer ", "bearer  ", "BeArEr \t", "Basic ", ""]), rest=AUTHORIZATION_TEXT)
def test_the_bucket_is_named_by_the_key_the_api_server_reads(edge, prefix, rest):
    """The same grammar on both sides: any variation the api_server takes
    as the same key (or as no key) lands in that key's bucket (or in the
    anonymous one), so no spelling of a key gets a fresh bucket."""
    authorization = prefix + rest
    key = auth.bearer_key([("authorization", authorization)])
    assert edge.bearer_key(authorization) == key
    expected = hashlib.sha256(key.encode()).hexdigest() if key else "anonymous"
    assert edge.rate_limit_bucket(authorization, None) == expected


def test_a_signed_link_without_a_key_is_its_signatures_bucket(edge):
    assert edge.rate_limit_bucket(None, "Sig-_0") == "link-" + hashlib.sha256(b"Sig-_0").hexdigest()
    # A key, when there is one, names the bucket.
    assert edge.rate_limit_bucket(f"Bearer {KEY}", "Sig-_0") == hashlib.sha256(KEY.encode()).hexdigest()
    # An empty signature is no link (the api_server asks for a key).
    assert edge.rate_limit_bucket(None, "") == "anonymous"


# --- query parameters of JSON requests -------------------------------------


def test_the_query_fields_come_from_the_protos(edge):
    """Path variables and body "*" fields are dropped, the rest bound once."""
    fields = envoy.query_fields()
    assert fields["GET"]["generation_id"] is None and fields["GET"]["generationId"] is None
    assert fields["GET"]["index"] is None
    assert fields["GET"]["signature"] == "signature" and fields["GET"]["pageSize"] == "page_size"
    assert fields["POST"]["prompt"] is None and fields["POST"]["generationId"] is None
    lua = {method: dict(table.items()) for method, table in edge.QUERY_FIELDS.items()}
    assert lua == {method: {name: field or False for name, field in table.items()} for method, table in fields.items()}


def check(edge, method: str, query: str) -> tuple[str | None, str | None, dict[str, str]]:
    kept, problem, values = edge.check_query(edge.QUERY_FIELDS[method], query)
    return kept, problem, dict(values.items())


ID = "3fa85f64-5717-4562-b3fc-2c963f66afa6"


@pytest.mark.parametrize(
    ("method", "query", "kept"),
    [
        ("GET", f"generation_id={ID}", ""),
        ("GET", f"a=1&generationId={ID}&b=2", "a=1&b=2"),
        ("GET", f"generation%5Fid={ID}&x", "x"),
        ("GET", f"generation_id.x={ID}", ""),
        ("GET", "index=3&expires=1&signature=s", "expires=1&signature=s"),
        ("POST", "prompt=x&width=512&requestId=r&foo=1", "foo=1"),
        ("POST", f"generation_id={ID}", ""),
    ],
)
def test_fields_grpc_gateway_binds_from_no_query_are_dropped(edge, method, query, kept):
    assert check(edge, method, query)[:2] == (kept, None)


@pytest.mark.parametrize(
    ("method", "query"),
    [
        ("GET", "pageSize=5&status=STATUS_PENDING"),
        ("GET", "a=1&&b"),
        ("GET", ""),
        ("POST", "x=1"),
        ("DELETE", "index=1"),
    ],
)
def test_a_query_with_nothing_to_drop_is_left_alone(edge, method, query):
    kept, problem, _ = edge.check_query(edge.QUERY_FIELDS[method], query)
    assert (kept, problem) == (None, None)


@pytest.mark.parametrize(
    ("query", "field"),
    [
        ("expires=1&signature=decoy&signature=real", "signature"),
        ("signature=real&sig%6Eature=decoy", "signature"),
        ("signature=&signature=real", "signature"),
        ("expires=1&expires=2&signature=s", "expires"),
        ("pageSize=1&page_size=2", "page_size"),
        ("status=1&status=1", "status"),
    ],
)
def test_a_field_given_twice_is_refused(edge, query, field):
    assert check(edge, "GET", query)[1] == f'too many values for field "{field}"'


def test_the_values_are_what_the_transcoder_reads(edge):
    _, _, values = check(edge, "GET", "expires=17&signature=a%2Bb+c%3d&signature.x=y&other=1")
    assert values == {"expires": "17", "signature": "a+b c="}


@settings(max_examples=300)
@given(st.text(alphabet="aZ09+%=-_.~2bBfF ", max_size=16))
def test_unescape_is_query_decoding(byte_edge, text):
    assert byte_edge.unescape(text.encode()) == urllib.parse.unquote_to_bytes(text.replace("+", " "))


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


# What gRPC's Python library decodes as UTF-8, and what it logs whole at
# ERROR and reads as Latin-1 instead.
UTF8 = [b"", b"ascii", "é".encode(), "\u00a0".encode(), "\u20ac".encode(), "\U0010ffff".encode(), "\ud7ff".encode()]
NOT_UTF8 = [
    b"Bearer leo_key\xe9",  # Latin-1
    b"\xa0",
    b"\xc0\x80",  # overlong NUL
    b"\xe0\x80\xaf",  # overlong
    b"\xed\xa0\x80",  # a surrogate
    b"\xf4\x90\x80\x80",  # past U+10FFFF
    b"\xf5\x80\x80\x80",
    b"\xe2\x82",  # cut short
    b"\x80",
    b"\xff",
]


@pytest.mark.parametrize("value", UTF8)
def test_utf8(byte_edge, value):
    assert byte_edge.is_utf8(value)
    assert byte_edge.header_refusal(b"authorization", value) is None


@pytest.mark.parametrize("value", NOT_UTF8)
def test_not_utf8(byte_edge, value):
    assert not byte_edge.is_utf8(value)


@settings(max_examples=500)
@given(st.binary(max_size=12) | st.text(max_size=6).map(lambda text: text.encode("utf-8", "surrogatepass")))
def test_is_utf8_agrees_with_python(byte_edge, value):
    try:
        value.decode("utf-8")
        decodes = True
    except UnicodeDecodeError:
        decodes = False
    assert bool(byte_edge.is_utf8(value)) is decodes


def test_a_value_that_is_not_utf8_is_refused(byte_edge):
    status, code, message = byte_edge.header_refusal(b"authorization", b"Bearer leo_key\xa0")
    assert (status, code) == (401, 16) and b"leo_key" not in message
    status, code, message = byte_edge.header_refusal(b"idempotency-key", b"\xe9")
    assert (status, code, message) == (400, 3, b"header idempotency-key: the value must be UTF-8")


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


# --- server-sent events -----------------------------------------------------


def sse_message(event_id: str, prompt: str = "a kite") -> str:
    """One watch message as the transcoder writes it: compact JSON, eventId last."""
    data = json.dumps(
        {"generation": {"prompt": prompt, "status": "STATUS_PENDING"}, "eventId": event_id}, separators=(",", ":")
    )
    return f"data: {data}\n\n"


def test_each_event_gets_its_id_and_the_retry_delay(edge):
    events, rest = edge.sse_fields(sse_message("Ab_-9") + sse_message("Zz"))
    assert rest == ""
    assert events == ("retry: 2000\nid: Ab_-9\n" + sse_message("Ab_-9") + "retry: 2000\nid: Zz\n" + sse_message("Zz"))


def test_an_event_without_an_id_gets_only_the_retry_delay(edge):
    assert edge.sse_fields(sse_message("")) == ("retry: 2000\n" + sse_message(""), "")


def test_a_prompt_cannot_forge_an_id(edge):
    forged = sse_message("real", prompt='x","eventId":"forged"}\n\n')
    assert edge.sse_fields(forged) == ("retry: 2000\nid: real\n" + forged, "")


@given(
    ids=st.lists(st.text(alphabet=string.ascii_letters + string.digits + "_-", min_size=1, max_size=22), max_size=5),
    cuts=st.lists(st.integers(0, 2000), max_size=6),
)
def test_events_cut_anywhere_across_chunks_come_out_whole(edge, ids, cuts):
    """What a chunk leaves incomplete, the next one completes: the output is the same however the body is cut."""
    body = "".join(sse_message(event_id) for event_id in ids)
    whole, _ = edge.sse_fields(body)
    out, rest = [], ""
    bounds = [0, *sorted(min(cut, len(body)) for cut in cuts), len(body)]
    for start, stop in itertools.pairwise(bounds):
        events, rest = edge.sse_fields(rest + body[start:stop])
        out.append(events)
    assert ("".join(out), rest) == (whole, "")
    assert whole.count("\nid: ") == len(ids)


def test_the_ended_watch_header_is_the_api_servers():
    assert load_edge().WATCH_ENDED_HEADER == watch_events.ENDED_HEADER


# --- limits ---------------------------------------------------------------


def test_the_header_limits(edge):
    assert (edge.MAX_HEADER_BYTES, edge.MAX_HEADERS) == (32 * 1024, 100)

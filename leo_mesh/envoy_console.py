"""The web console (console/) as routes of Envoy's public listener.

Each file of console/ is one route whose direct response carries the file
itself (the rendered config needs no other file, and Envoy holds it in memory), with its content type
and the console's security headers: a strict Content-Security-Policy (its
own scripts, styles and images only, calls to its own origin only, no
markup from strings: Trusted Types), no framing, no referrer, no sniffing.
The routes switch off what is for API calls only: the JSON transcoder
(which would answer 404) and the rate limiter (a page load is several
files that never reach the api_server, and must not spend the bucket that
requests without a key share); they switch on gzip, which is off for
everything else. `/` and `/console` redirect to `/console/`.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONSOLE_DIR = ROOT / "console"
PREFIX = "/console/"
INDEX = "index.html"
# Envoy's route_config.max_direct_response_body_size_bytes: a larger file is refused when rendering.
MAX_FILE_BYTES = 256 * 1024

CONTENT_TYPES = {
    ".html": "text/html; charset=utf-8",
    ".css": "text/css; charset=utf-8",
    ".js": "text/javascript; charset=utf-8",
    ".svg": "image/svg+xml",
}

CONTENT_SECURITY_POLICY = "; ".join(
    [
        "default-src 'none'",
        "script-src 'self'",
        "style-src 'self'",
        # The generated files: signed links to this origin's asset route.
        "img-src 'self'",
        "connect-src 'self'",
        "form-action 'none'",
        "frame-ancestors 'none'",
        "base-uri 'none'",
        # No HTML, script or URL from a string reaches the DOM (innerHTML and its kin throw).
        "require-trusted-types-for 'script'",
        "trusted-types 'none'",
    ]
)

SECURITY_HEADERS = {
    "content-security-policy": CONTENT_SECURITY_POLICY,
    "x-content-type-options": "nosniff",
    "x-frame-options": "DENY",
    "referrer-policy": "no-referrer",
    "cross-origin-opener-policy": "same-origin",
    "cross-origin-resource-policy": "same-origin",
    "permissions-policy": "camera=(), microphone=(), geolocation=(), payment=(), usb=()",
    # Not hashed into their names, so a browser asks again each time (a
    # change reaches it at once); the files are a few KB compressed.
    "cache-control": "no-cache",
}

FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
TRANSCODER = "envoy.filters.http.grpc_json_transcoder"
RATE_LIMITER = "envoy.filters.http.local_ratelimit"
COMPRESSOR = "envoy.filters.http.compressor"
COMPRESSOR_PER_ROUTE = "type.googleapis.com/envoy.extensions.filters.http.compressor.v3.CompressorPerRoute"
READ_METHODS = ["GET", "HEAD"]


def console_files(directory: Path = CONSOLE_DIR) -> dict[str, Path]:
    """URL path -> file, for every file of `directory` (index.html at PREFIX)."""
    files = {}
    for path in sorted(p for p in directory.rglob("*") if p.is_file()):
        if path.suffix not in CONTENT_TYPES:
            raise ValueError(f"{path}: the console serves {', '.join(CONTENT_TYPES)} files only")
        if path.stat().st_size > MAX_FILE_BYTES:
            raise ValueError(f"{path}: over {MAX_FILE_BYTES} bytes, Envoy's limit for a direct response")
        relative = path.relative_to(directory).as_posix()
        files[PREFIX if relative == INDEX else PREFIX + relative] = path
    if PREFIX not in files:
        raise ValueError(f"{directory} has no {INDEX}")
    return files


def _per_filter() -> dict:
    """The API's transcoder and rate limiter off; the compressor, off by default, on."""
    return {
        TRANSCODER: {"@type": FILTER_CONFIG, "disabled": True},
        RATE_LIMITER: {"@type": FILTER_CONFIG, "disabled": True},
        COMPRESSOR: {
            "@type": FILTER_CONFIG,
            "config": {"@type": COMPRESSOR_PER_ROUTE, "overrides": {"response_direction_config": {}}},
        },
    }


def _methods(methods: list[str], invert: bool = False) -> list[dict]:
    match = {"name": ":method", "string_match": {"safe_regex": {"regex": f"^({'|'.join(methods)})$"}}}
    return [{**match, "invert_match": True} if invert else match]


def _headers(headers: dict[str, str]) -> list[dict]:
    return [
        {"header": {"key": key, "value": value}, "append_action": "OVERWRITE_IF_EXISTS_OR_ADD"}
        for key, value in headers.items()
    ]


def console_routes(directory: Path = CONSOLE_DIR) -> Iterator[dict]:
    """The console's routes: its files (GET, HEAD), 405 for other methods,
    and the redirects to PREFIX."""
    for url, path in console_files(directory).items():
        yield {
            "match": {"path": url, "headers": _methods(READ_METHODS)},
            # Bytes (base64 in the config): a file's text may hold anything,
            # "${" of a JavaScript template literal included.
            "direct_response": {"status": 200, "body": {"inline_bytes": base64.b64encode(path.read_bytes()).decode()}},
            "response_headers_to_add": _headers({"content-type": CONTENT_TYPES[path.suffix], **SECURITY_HEADERS}),
            "typed_per_filter_config": _per_filter(),
        }
    yield {
        "match": {"prefix": PREFIX, "headers": _methods(READ_METHODS, invert=True)},
        "direct_response": {"status": 405, "body": {"inline_string": "Method Not Allowed"}},
        "response_headers_to_add": _headers({"allow": ", ".join(READ_METHODS)}),
        "typed_per_filter_config": _per_filter(),
    }
    for entry in ("/", PREFIX.rstrip("/")):
        yield {
            "match": {"path": entry, "headers": _methods(READ_METHODS)},
            "redirect": {"path_redirect": PREFIX, "response_code": "FOUND"},
            "typed_per_filter_config": _per_filter(),
        }

"""Webhook URLs: http(s) only, and no loopback, link-local or private
addresses unless allowed. No network here: only literals and localhost."""

from __future__ import annotations

import pytest

from api_server.webhooks import check_url

MALFORMED = [
    "ftp://93.184.216.34/hook",
    "file:///etc/passwd",
    "http:///hook",
    "hook",
    "https://user:pass@93.184.216.34/hook",
    "https://user@93.184.216.34/hook",
    "https://93.184.216.34:99999/hook",
    "https://93.184.216.34/" + "a" * 2048,
]

NON_PUBLIC = [
    "http://127.0.0.1/hook",
    "http://127.1.2.3:8080/hook",
    "http://localhost:8080/hook",
    "http://[::1]/hook",
    "http://10.1.2.3/hook",
    "http://192.168.0.10/hook",
    "http://172.16.0.1/hook",
    "http://172.31.255.255/hook",
    "http://169.254.169.254/latest/meta-data",
    "http://[fd00::1]/hook",
    "http://[fe80::1]/hook",
    "http://[::ffff:127.0.0.1]/hook",
    "http://[::ffff:10.0.0.1]/hook",
    "http://0.0.0.0/hook",
    "http://[::]/hook",
    "http://224.0.0.1/hook",
    "http://100.64.0.1/hook",
]


@pytest.mark.parametrize("url", MALFORMED)
@pytest.mark.parametrize("allow_private", [False, True])
async def test_malformed_refused(url, allow_private):
    assert await check_url(url, allow_private=allow_private) is not None


@pytest.mark.parametrize("url", NON_PUBLIC)
async def test_non_public_refused(url):
    error = await check_url(url, allow_private=False)
    assert error is not None and "resolves to" in error


@pytest.mark.parametrize("url", NON_PUBLIC)
async def test_non_public_allowed_when_enabled(url):
    assert await check_url(url, allow_private=True) is None


@pytest.mark.parametrize(
    "url", ["https://93.184.216.34/hook", "http://93.184.216.34:8080/a?b=c", "https://[2606:2800:220:1::1]/hook"]
)
async def test_public_literal_allowed(url):
    assert await check_url(url, allow_private=False) is None


async def test_error_names_the_reason():
    assert "loopback" in await check_url("http://127.0.0.1/", allow_private=False)
    assert "private" in await check_url("http://10.0.0.1/", allow_private=False)
    assert "link-local" in await check_url("http://169.254.169.254/", allow_private=False)


async def test_unresolvable_host_refused():
    error = await check_url("https://no-such-host.invalid/hook", allow_private=True)
    assert error is not None and "cannot be resolved" in error

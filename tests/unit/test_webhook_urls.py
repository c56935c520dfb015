"""Webhook URLs: http(s) only, usable by the sender's HTTP client, and no
loopback, link-local or private addresses (also embedded in IPv6) unless
allowed; a delivery connects to the address that was checked. No network
here: only literals, localhost and an in-memory transport."""

from __future__ import annotations

import ipaddress
import logging
import uuid

import httpx
import pytest

from api_server import webhook_urls
from api_server.settings import WebhookSettings
from api_server.webhook_sender import WebhookSender
from leo_mesh import logs
from leo_mesh.db.webhooks import ClaimedDelivery


async def check_url(url: str, *, allow_private: bool, resolver=webhook_urls.resolve) -> str | None:
    """Why the URL is refused, or None."""
    try:
        await webhook_urls.check(url, allow_private=allow_private, resolver=resolver)
    except webhook_urls.UrlRefused as refused:
        return str(refused)
    return None


MALFORMED = [
    "ftp://93.184.216.34/hook",
    "file:///etc/passwd",
    "http:///hook",
    "hook",
    "https://user:pass@93.184.216.34/hook",
    "https://user@93.184.216.34/hook",
    "https://93.184.216.34:99999/hook",
    "https://93.184.216.34/" + "a" * 2048,
    # Characters the HTTP client refuses when it sends (they once stopped every webhook).
    "http://93.184.216.34/a\u0001b",
    "http://93.184.216.34/a\tb",
    "http://93.184.216.34/a\x00b",
    "http://93.184.216.34/a b",
    "http://93.184.216.34/a\nb",
    "http://93.184.216.34/a\rb",
    "http://93.184.216.34/a\x7fb",
    "http://93.184.216.34/a\x85b",
    "http://93.18\x004.216.34/",
    "http://[::1/hook",
    "http://exa mple.com/",
    "https://93.184.216.34:0/hook",
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
    # IPv6 forms that carry a private IPv4 address.
    "http://[2002:7f00:1::]/",  # 6to4 of 127.0.0.1
    "http://[2002:c0a8:0001::1]/",  # 6to4 of 192.168.0.1
    "http://[2001:0:4136:e378:8000:63bf:80ff:fffe]/",  # Teredo, client 127.0.0.1
    "http://[64:ff9b::7f00:1]/",  # NAT64 of 127.0.0.1
    "http://[64:ff9b:1::a00:1]/",  # local-use NAT64 of 10.0.0.1
    "http://[::7f00:1]/",  # IPv4-compatible 127.0.0.1
    "http://[2606:2800:220:1:0:5efe:a00:1]/",  # ISATAP, 10.0.0.1
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


@pytest.mark.parametrize(
    "address, embedded",
    [
        ("2002:7f00:1::", "127.0.0.1"),
        ("2002:5db8:d822::1", "93.184.216.34"),
        ("64:ff9b::5db8:d822", "93.184.216.34"),
        ("2606:2800:220:1:200:5efe:a00:1", "10.0.0.1"),
        ("::ffff:10.0.0.1", "10.0.0.1"),
    ],
)
def test_embedded_ipv4_is_found(address, embedded):
    assert ipaddress.IPv4Address(embedded) in webhook_urls.embedded_ipv4(ipaddress.IPv6Address(address))


async def test_a_public_6to4_address_is_allowed():
    assert await check_url("http://[2002:5db8:d822::1]/hook", allow_private=False) is None


def rebinding_resolver(first: str, then: str):
    """A name server that answers `first` once, then `then` (DNS rebinding)."""
    answers = [ipaddress.ip_address(first)]

    async def resolve(host: str, port: int):
        return [answers.pop()] if answers else [ipaddress.ip_address(then)]

    return resolve


async def test_a_delivery_connects_to_the_address_it_checked_and_names_only_the_host(caplog):
    seen: list[httpx.Request] = []

    def receive(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(204)

    sender = WebhookSender(
        None,  # type: ignore[arg-type]  # _post touches no store
        WebhookSettings(),
        transport=httpx.MockTransport(receive),
        resolver=rebinding_resolver("93.184.216.34", "127.0.0.1"),
    )
    delivery = ClaimedDelivery(
        uuid.uuid4(), uuid.uuid4(), "https://hooks.example.com:8443/in?token=s3cret", "{}", 1, "whsec_" + "A" * 44
    )
    logs.configure("test", "DEBUG")  # as the services log (it silences httpx's URL lines)
    logging.getLogger().addHandler(caplog.handler)
    status_code, error, host = await sender._post(delivery)
    await sender.close()
    assert (status_code, error, host) == (204, None, "hooks.example.com")
    (request,) = seen
    assert request.url.host == "93.184.216.34" and request.url.port == 8443
    assert request.headers["host"] == "hooks.example.com:8443"
    assert request.extensions["sni_hostname"] == "hooks.example.com"
    assert "s3cret" not in caplog.text


async def test_an_unusable_stored_url_is_an_error_of_its_attempt_not_of_the_sender():
    sender = WebhookSender(None, WebhookSettings(), transport=httpx.MockTransport(lambda r: httpx.Response(200)))  # type: ignore[arg-type]
    delivery = ClaimedDelivery(
        uuid.uuid4(), uuid.uuid4(), "http://93.184.216.34/a\u0001b", "{}", 1, "whsec_" + "A" * 44
    )
    status_code, error, _ = await sender._post(delivery)
    await sender.close()
    assert status_code is None and error.startswith("refused: the URL must not contain")

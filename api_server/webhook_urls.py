"""Which webhook URLs may be used, and where exactly a delivery connects.

A URL is checked at create time (refused with a field violation) and again
before every attempt, and the attempt connects to the address that check
resolved and approved: a name that resolves elsewhere a moment later (DNS
rebinding) is never reached.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

import httpx

from api_server.settings import RESOLVE_TIMEOUT_S

URL_MAX_LENGTH = 2048

IpAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str, int], Awaitable[list[IpAddress]]]

NAT64_PREFIXES = (ipaddress.IPv6Network("64:ff9b::/96"), ipaddress.IPv6Network("64:ff9b:1::/48"))
IPV4_COMPATIBLE = ipaddress.IPv6Network("::/96")
ISATAP_IDS = (0x00005EFE, 0x02005EFE)


class UrlRefused(Exception):
    """Why a webhook URL may not be used (a sentence a client can read)."""


@dataclass(frozen=True)
class Target:
    """A checked URL and the address its host resolved to when checked."""

    url: httpx.URL
    address: IpAddress

    def request_url(self) -> httpx.URL:
        """The URL with the checked address in place of the host name."""
        return self.url.copy_with(host=str(self.address))

    @property
    def host_header(self) -> str:
        return self.url.netloc.decode("ascii")


def embedded_ipv4(address: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """The IPv4 addresses an IPv6 address carries: mapped, 6to4, Teredo,
    NAT64, IPv4-compatible and ISATAP forms."""
    found = []
    if address.ipv4_mapped is not None:
        found.append(address.ipv4_mapped)
    if address.sixtofour is not None:
        found.append(address.sixtofour)
    if address.teredo is not None:
        found.extend(address.teredo)
    low32 = ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if any(address in prefix for prefix in NAT64_PREFIXES) or address in IPV4_COMPATIBLE:
        found.append(low32)
    if (int(address) >> 32) & 0xFFFFFFFF in ISATAP_IDS:
        found.append(low32)
    return found


def non_public(address: IpAddress) -> str | None:
    """Why an address must not be reached, or None if it is public."""
    candidates: list[IpAddress] = [address]
    if isinstance(address, ipaddress.IPv6Address):
        candidates.extend(embedded_ipv4(address))
    for candidate in candidates:
        checks = [
            ("loopback", candidate.is_loopback),
            ("link-local", candidate.is_link_local),
            ("private", candidate.is_private),
            ("multicast", candidate.is_multicast),
            ("reserved", candidate.is_reserved),
            ("unspecified", candidate.is_unspecified),
            ("not globally routable", not candidate.is_global),
        ]
        kind = next((kind for kind, matches in checks if matches), None)
        if kind is not None:
            return kind if candidate is address else f"{kind} (it embeds {candidate})"
    return None


def parse(url: str) -> httpx.URL:
    """The URL as the sender's HTTP client takes it, or UrlRefused: absolute
    http(s), a host, no credentials, no white space or control characters."""
    if len(url) > URL_MAX_LENGTH:
        raise UrlRefused(f"the URL is longer than {URL_MAX_LENGTH} characters")
    bad = next((c for c in url if ord(c) <= 0x20 or 0x7F <= ord(c) <= 0x9F), None)
    if bad is not None:
        raise UrlRefused(f"the URL must not contain white space or control characters (found {bad!r})")
    try:
        parsed = httpx.URL(url)
        port = parsed.port
    except (httpx.InvalidURL, ValueError, UnicodeError) as exc:
        raise UrlRefused(f"the URL is malformed ({exc})") from None
    if parsed.scheme not in ("http", "https"):
        raise UrlRefused("the URL must be http or https")
    if not parsed.host:
        raise UrlRefused("the URL has no host")
    if parsed.userinfo:
        raise UrlRefused("the URL must not contain credentials")
    if port is not None and not 1 <= port <= 65535:
        raise UrlRefused("the URL's port must be 1 to 65535")
    return parsed


async def resolve(host: str, port: int) -> list[IpAddress]:
    """The addresses a host name (or literal address) stands for."""
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    infos = await asyncio.wait_for(
        asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM), timeout=RESOLVE_TIMEOUT_S
    )
    # Drop any IPv6 scope ("fe80::1%eth0"): it does not change the class.
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


async def check(url: str, *, allow_private: bool, resolver: Resolver = resolve) -> Target:
    """The URL and the address to connect to, or UrlRefused.

    Unless allow_private, every address the host resolves to must be public.
    """
    parsed = parse(url)
    host = parsed.host
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    try:
        addresses = await resolver(host, port)
    except (OSError, TimeoutError, UnicodeError) as exc:
        raise UrlRefused(f"the host {host} cannot be resolved ({str(exc) or 'timed out'})") from None
    if not addresses:
        raise UrlRefused(f"the host {host} resolves to no address")
    if not allow_private:
        for address in addresses:
            kind = non_public(address)
            if kind is not None:
                raise UrlRefused(f"the host {host} resolves to {address}, which is {kind}")
    return Target(parsed, addresses[0])

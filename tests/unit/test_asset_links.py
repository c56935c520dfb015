"""Signed links to generated files and watches (leo_mesh.media.links): pure logic, a fixed clock."""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from urllib.parse import parse_qs, urlsplit

import pytest

from leo_mesh.errors import AssetLinkExpired, AssetLinkInvalid
from leo_mesh.media.links import AssetLinks, asset_path, watch_path

NOW = 1_800_000_000.0
GENERATION = uuid.UUID("3fa85f64-5717-4562-b3fc-2c963f66afa6")


def links(clock=lambda: NOW, key: bytes = b"k" * 32) -> AssetLinks:
    return AssetLinks(key, base_url="http://127.0.0.1:8080/", ttl_s=3600, clock=clock)


def parts(url: str) -> tuple[str, int, str]:
    split = urlsplit(url)
    query = parse_qs(split.query)
    return split.path, int(query["expires"][0]), query["signature"][0]


def test_a_link_names_the_file_and_checks_out_until_it_expires():
    signer = links()
    expires = signer.expiry()
    url = signer.url(GENERATION, 1, expires)
    path, expires_in_url, signature = parts(url)
    assert url.startswith("http://127.0.0.1:8080/v1/") and path == asset_path(GENERATION, 1)
    assert expires_in_url == expires
    assert signer.check(GENERATION, 1, expires, signature) == expires - NOW


@pytest.mark.parametrize(
    "change",
    [
        lambda g, i, e, s: (uuid.uuid4(), i, e, s),  # another generation
        lambda g, i, e, s: (g, i + 1, e, s),  # another file
        lambda g, i, e, s: (g, i, e + 3600, s),  # a later expiry
        lambda g, i, e, s: (g, i, e, s[:-1] + ("A" if s[-1] != "A" else "B")),  # one character of the signature
        lambda g, i, e, s: (g, i, e, ""),
        lambda g, i, e, s: (g, i, e, "é" * 43),
    ],
)
def test_a_tampered_link_is_invalid(change):
    signer = links()
    expires = signer.expiry()
    _, _, signature = parts(signer.url(GENERATION, 0, expires))
    with pytest.raises(AssetLinkInvalid):
        signer.check(*change(GENERATION, 0, expires, signature))


def test_a_link_signed_with_another_key_is_invalid():
    expires = links().expiry()
    _, _, signature = parts(links(key=b"other").url(GENERATION, 0, expires))
    with pytest.raises(AssetLinkInvalid):
        links().check(GENERATION, 0, expires, signature)


def test_an_expired_link_is_refused_as_expired():
    now = [NOW]
    signer = links(clock=lambda: now[0])
    expires = signer.expiry()
    _, _, signature = parts(signer.url(GENERATION, 0, expires))
    now[0] = expires
    with pytest.raises(AssetLinkExpired):
        signer.check(GENERATION, 0, expires, signature)


def test_a_link_is_the_documented_hmac_of_path_and_expiry_so_every_replica_agrees():
    """Replicas of different versions check each other's links: the format is a contract."""
    key = b"k" * 32
    expires = links(key=key).expiry()
    path = asset_path(GENERATION, 1)
    digest = hmac.new(key, f"{path}\n{expires}".encode(), hashlib.sha256).digest()
    signature = base64.urlsafe_b64encode(digest).rstrip(b"=").decode()
    assert links(key=key).url(GENERATION, 1, expires) == (
        f"http://127.0.0.1:8080{path}?expires={expires}&signature={signature}"
    )


def test_a_watch_link_names_the_watch_and_opens_nothing_else():
    signer = links()
    expires = signer.expiry()
    path, expires_in_url, signature = parts(signer.watch_url(GENERATION, expires))
    assert path == watch_path(GENERATION) == f"/v1/generations/{GENERATION}:watch"
    assert signer.check_watch(GENERATION, expires_in_url, signature) == expires - NOW
    with pytest.raises(AssetLinkInvalid):
        signer.check_watch(uuid.uuid4(), expires, signature)
    with pytest.raises(AssetLinkInvalid):  # a watch link is no file link, and the other way round
        signer.check(GENERATION, 0, expires, signature)
    _, _, file_signature = parts(signer.url(GENERATION, 0, expires))
    with pytest.raises(AssetLinkInvalid):
        signer.check_watch(GENERATION, expires, file_signature)


def test_an_expired_watch_link_is_refused_as_expired():
    now = [NOW]
    signer = links(clock=lambda: now[0])
    expires = signer.expiry()
    _, _, signature = parts(signer.watch_url(GENERATION, expires))
    now[0] = expires + 1
    with pytest.raises(AssetLinkExpired):
        signer.check_watch(GENERATION, expires, signature)

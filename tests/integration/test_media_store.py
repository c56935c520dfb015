"""The media store's contract, the same for both backends: a local directory
and an S3 bucket on a real S3-compatible server (moto's, started here)."""

from __future__ import annotations

import asyncio
import os
import uuid

import pytest

from leo_mesh.media.settings import MediaSettings
from leo_mesh.media.store import CHUNK_BYTES, MediaStore, ObjectMissing, key_problem, open_store
from tests.s3_server import ACCESS_KEY_ID, SECRET_ACCESS_KEY


def s3_settings(endpoint: str, bucket: str, **more) -> MediaSettings:
    return MediaSettings(
        store="s3",
        s3_endpoint_url=endpoint,
        s3_bucket=bucket,
        s3_access_key_id=ACCESS_KEY_ID,
        s3_secret_access_key=SECRET_ACCESS_KEY,
        **more,
    )


@pytest.fixture(scope="module", params=["local", "s3"])
async def store(request, tmp_path_factory):
    """One store of each backend for the module (an S3 client is slow to
    make); each test uses keys of its own."""
    if request.param == "local":
        settings = MediaSettings(store="local", local_dir=tmp_path_factory.mktemp("media"))
    else:
        settings = s3_settings(
            request.getfixturevalue("s3_endpoint"), f"b-{uuid.uuid4().hex[:12]}", s3_create_bucket=True
        )
    media = open_store(settings)
    await media.prepare()
    yield media
    await media.close()


async def read_all(media: MediaStore, key: str) -> tuple[bytes, list[int], str]:
    stored = await media.open(key)
    pieces = [chunk async for chunk in stored.chunks()]
    data = b"".join(pieces)
    assert stored.size == len(data)
    return data, [len(piece) for piece in pieces], stored.etag


async def test_what_is_put_is_read_back(store):
    await store.put("g1/0.png", b"\x89PNG one", "image/png")
    data, _, etag = await read_all(store, "g1/0.png")
    assert data == b"\x89PNG one"
    assert etag.startswith('"') and etag.endswith('"') and len(etag) > 2


async def test_a_second_put_replaces_the_object(store):
    await store.put("g2/0.png", b"first", "image/png")
    await store.put("g2/0.png", b"second and longer", "image/png")
    assert (await read_all(store, "g2/0.png"))[0] == b"second and longer"


async def test_a_missing_object(store):
    with pytest.raises(ObjectMissing):
        await store.open("nobody/0.png")


async def test_a_deleted_object_is_gone_and_deleting_a_missing_one_is_fine(store):
    await store.put("g5/0.png", b"cancelled work", "image/png")
    await store.delete("g5/0.png")
    with pytest.raises(ObjectMissing):
        await store.open("g5/0.png")
    await store.delete("g5/0.png")


async def test_a_big_object_comes_in_bounded_chunks(store):
    data = os.urandom(3 * CHUNK_BYTES + 123)
    await store.put("g3/0.png", data, "image/png")
    read, sizes, _ = await read_all(store, "g3/0.png")
    assert read == data and len(sizes) >= 4 and max(sizes) <= CHUNK_BYTES


async def test_many_writers_at_once(store):
    keys = [f"g4/{i}.png" for i in range(20)]
    await asyncio.gather(*(store.put(key, key.encode() * 100, "image/png") for key in keys))
    for key in keys:
        assert (await read_all(store, key))[0] == key.encode() * 100


@pytest.mark.parametrize("key", ["", "../x", "a//b", "a/./b", "/abs", "a b", "a\x00b", "é", "x" * 513])
async def test_keys_that_name_no_object_are_refused(store, key):
    assert key_problem(key) is not None
    with pytest.raises(ValueError):
        await store.put(key, b"x", "image/png")
    with pytest.raises(ValueError):
        await store.delete(key)


async def test_a_bucket_is_created_only_when_asked(s3_endpoint):
    bucket = f"b-{uuid.uuid4().hex[:12]}"
    missing = open_store(s3_settings(s3_endpoint, bucket))
    await missing.prepare()  # not asked to create it
    with pytest.raises(Exception, match="NoSuchBucket"):
        await missing.put("g/0.png", b"x", "image/png")
    await missing.close()
    made = open_store(s3_settings(s3_endpoint, bucket, s3_create_bucket=True))
    await made.prepare()
    await made.prepare()  # once it exists, nothing to do
    await made.put("g/0.png", b"x", "image/png")
    assert (await read_all(made, "g/0.png"))[0] == b"x"
    await made.close()

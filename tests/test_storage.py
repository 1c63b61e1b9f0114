"""One behavioural suite run against LocalStorage and S3Storage (real S3 protocol via moto)."""

from __future__ import annotations

import hashlib
import json
import os
import re
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import timedelta
from pathlib import Path

import httpx
import pytest

from cdn.storage import (
    CHUNK_SIZE,
    S3_PART_SIZE,
    TEMP_PREFIX,
    LocalStorage,
    ObjectNotFound,
    S3Storage,
    Storage,
    StorageError,
    build_storage,
    content_type_for,
)
from tests.support.s3 import ACCESS_KEY, SECRET_KEY, free_port, start_moto

ROOT = Path(__file__).resolve().parent.parent
MiB = 1024 * 1024


@pytest.fixture(scope="session")
def moto_endpoint() -> Iterator[str]:
    """A moto S3 server for the session; a server that does not start fails the tests."""
    server, endpoint = start_moto()
    yield endpoint
    server.stop()


def _s3(endpoint: str) -> S3Storage:
    storage = S3Storage(endpoint, ACCESS_KEY, SECRET_KEY, f"rf-{uuid.uuid4().hex[:16]}")
    storage.ensure_bucket()
    return storage


@pytest.fixture(params=["local", "s3"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Storage:
    """Each backend in turn; S3 gets a fresh bucket per test."""
    if request.param == "local":
        return LocalStorage(tmp_path / "store")
    return _s3(request.getfixturevalue("moto_endpoint"))


def pattern(size: int, seed: int = 0) -> bytes:
    """Deterministic bytes that differ at every offset modulo 251 (a prime)."""
    block = bytes((i * 7 + seed) % 251 for i in range(251))
    return (block * (size // 251 + 1))[:size]


def generated_stream(total: int, chunk: int, feed: Callable[[bytes], object]) -> Iterator[bytes]:
    """`total` bytes in `chunk`-sized pieces, made on the fly, passed to `feed` as they go."""
    block = os.urandom(chunk)
    sent = 0
    counter = 0
    while sent < total:
        piece = (counter.to_bytes(8, "big") + block)[: min(chunk, total - sent)]
        feed(piece)
        sent += len(piece)
        counter += 1
        yield piece


def read_all(storage: Storage, key: str, start: int = 0, end: int | None = None) -> bytes:
    return b"".join(storage.open_range(key, start, end))


# ------------------------------------------------------------------ put / stat


def test_put_bytes_then_stat(storage: Storage) -> None:
    before = time.time()
    info = storage.put_bytes("media/v_abc/r_1/master.m3u8", b"#EXTM3U\n")
    assert info.key == "media/v_abc/r_1/master.m3u8"
    assert info.size == 8
    assert re.fullmatch(r'"[^"]+"', info.etag), info.etag
    assert info.content_type == "application/vnd.apple.mpegurl"
    assert before - 5 <= info.last_modified <= time.time() + 5
    assert storage.stat(info.key) == info
    assert storage.exists(info.key)
    assert read_all(storage, info.key) == b"#EXTM3U\n"


def test_etag_changes_with_content(storage: Storage) -> None:
    first = storage.put_bytes("k/a.json", b'{"v": 1}')
    second = storage.put_bytes("k/a.json", b'{"v": 2}')
    assert first.size == second.size
    assert first.etag != second.etag
    assert storage.stat("k/a.json").etag == second.etag
    assert read_all(storage, "k/a.json") == b'{"v": 2}'


def test_put_file(storage: Storage, tmp_path: Path) -> None:
    source = tmp_path / "in.mp4"
    data = pattern(300_000, seed=3)
    source.write_bytes(data)
    info = storage.put_file("uploads/v_1/source.mp4", source)
    assert (info.size, info.content_type) == (len(data), "video/mp4")
    assert read_all(storage, "uploads/v_1/source.mp4") == data


def test_empty_object(storage: Storage) -> None:
    info = storage.put_bytes("uploads/v_1/empty", b"")
    assert info.size == 0
    assert read_all(storage, "uploads/v_1/empty") == b""


# ------------------------------------------------------------------ ranges

DATA_SIZE = 200_000  # crosses several 64 KiB chunks


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (0, None, slice(0, DATA_SIZE)),
        (0, 0, slice(0, 1)),
        (10, 19, slice(10, 20)),
        (CHUNK_SIZE - 1, CHUNK_SIZE, slice(CHUNK_SIZE - 1, CHUNK_SIZE + 1)),
        (1000, 150_000, slice(1000, 150_001)),
        (DATA_SIZE - 10, None, slice(DATA_SIZE - 10, DATA_SIZE)),
        (DATA_SIZE - 1, DATA_SIZE - 1, slice(DATA_SIZE - 1, DATA_SIZE)),
        (DATA_SIZE - 10, 10**9, slice(DATA_SIZE - 10, DATA_SIZE)),  # end clamped
    ],
)
def test_open_range(storage: Storage, start: int, end: int | None, expected: slice) -> None:
    data = pattern(DATA_SIZE)
    storage.put_bytes("media/v/r/v720/00001.m4s", data)
    chunks = list(storage.open_range("media/v/r/v720/00001.m4s", start, end))
    assert b"".join(chunks) == data[expected]
    assert all(0 < len(chunk) <= CHUNK_SIZE for chunk in chunks)


def test_open_range_start_past_end_is_refused(storage: Storage) -> None:
    storage.put_bytes("a/b.m4s", b"0123456789")
    with pytest.raises(ValueError):
        read_all(storage, "a/b.m4s", 10, None)


@pytest.mark.parametrize(("start", "end"), [(-1, None), (5, 4)])
def test_open_range_bad_bounds(storage: Storage, start: int, end: int | None) -> None:
    storage.put_bytes("a/b.m4s", b"0123456789")
    with pytest.raises(ValueError):
        storage.open_range("a/b.m4s", start, end)


# ------------------------------------------------------------------ missing keys


def test_missing_key(storage: Storage, tmp_path: Path) -> None:
    assert not storage.exists("media/nope.m4s")
    with pytest.raises(ObjectNotFound):
        storage.stat("media/nope.m4s")
    with pytest.raises(ObjectNotFound):
        storage.open_range("media/nope.m4s")  # raised before any chunk is asked for
    with pytest.raises(ObjectNotFound):
        storage.download("media/nope.m4s", tmp_path / "out.m4s")
    assert not (tmp_path / "out.m4s").exists()
    storage.delete("media/nope.m4s")  # a missing key is fine
    assert issubclass(ObjectNotFound, StorageError)


def test_a_prefix_is_not_an_object(storage: Storage) -> None:
    storage.put_bytes("media/v/r/a.m4s", b"x")
    assert not storage.exists("media/v")
    with pytest.raises(ObjectNotFound):
        storage.stat("media/v/r")


# ------------------------------------------------------------------ download / delete


def test_download(storage: Storage, tmp_path: Path) -> None:
    data = pattern(150_000, seed=9)
    storage.put_bytes("uploads/v_1/000000000000", data)
    target = tmp_path / "deep" / "dir" / "source.bin"
    storage.download("uploads/v_1/000000000000", target)
    assert target.read_bytes() == data
    assert [p.name for p in target.parent.iterdir()] == ["source.bin"]  # no temp files left


def test_delete(storage: Storage) -> None:
    storage.put_bytes("media/v/a.jpg", b"jpg")
    storage.put_bytes("media/v/b.jpg", b"jpg")
    storage.delete("media/v/a.jpg")
    assert not storage.exists("media/v/a.jpg")
    assert storage.exists("media/v/b.jpg")
    assert [i.key for i in storage.list("")] == ["media/v/b.jpg"]


# ------------------------------------------------------------------ list / delete_prefix

KEYS = [
    "media/v_abc/r_1/master.m3u8",
    "media/v_abc/r_1/v720/00001.m4s",
    "media/v_abc/r_1/v720/init.mp4",
    "media/v_abcd/r_2/master.m3u8",
    "media/v_b/r_3/poster.jpg",
    "uploads/v_abc/000000000000",
]


def _fill(storage: Storage) -> None:
    for n, key in enumerate(reversed(KEYS)):
        storage.put_bytes(key, b"x" * (n + 1))


@pytest.mark.parametrize(
    ("prefix", "expected"),
    [
        ("", KEYS),
        ("media/", KEYS[:5]),
        ("media/v_abc/", KEYS[:3]),
        ("media/v_abc", KEYS[:4]),  # plain string prefix, as S3
        ("media/v_abc/r_1/v720/", KEYS[1:3]),
        ("media/v_abc/r_1/master.m3u8", KEYS[:1]),
        ("uploads", KEYS[5:]),
        ("nothing/", []),
    ],
)
def test_list(storage: Storage, prefix: str, expected: list[str]) -> None:
    _fill(storage)
    infos = storage.list(prefix)
    assert [info.key for info in infos] == expected
    sizes = {key: n + 1 for n, key in enumerate(reversed(KEYS))}
    for info in infos:
        assert info.size == sizes[info.key]
        assert info.etag == storage.stat(info.key).etag
        assert info.content_type == content_type_for(info.key)


def test_delete_prefix(storage: Storage) -> None:
    _fill(storage)
    assert storage.delete_prefix("media/v_abc/") == 3
    assert [i.key for i in storage.list("")] == KEYS[3:]
    assert storage.delete_prefix("media/v_abc/") == 0
    assert storage.delete_prefix("media/") == 2
    assert [i.key for i in storage.list("")] == KEYS[5:]
    with pytest.raises(ValueError):
        storage.delete_prefix("")
    assert storage.exists(KEYS[5])


# ------------------------------------------------------------------ put_tree / content types


TREE = {
    "master.m3u8": "application/vnd.apple.mpegurl",
    "manifest.mpd": "application/dash+xml",
    "v720/init.mp4": "video/mp4",
    "v720/00001.m4s": "video/iso.segment",
    "v720/index.m3u8": "application/vnd.apple.mpegurl",
    "audio/00001.m4s": "video/iso.segment",
    "poster.jpg": "image/jpeg",
    "storyboard.vtt": "text/vtt",
    "report.json": "application/json",
    "notes.bin": "application/octet-stream",
}


def test_put_tree(storage: Storage, tmp_path: Path) -> None:
    out = tmp_path / "out"
    contents = {}
    for n, rel in enumerate(TREE):
        path = out / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        contents[rel] = pattern(1000 + n * 37, seed=n)
        path.write_bytes(contents[rel])
    infos = storage.put_tree("media/v_1/r_1", out)
    assert [i.key for i in infos] == sorted(f"media/v_1/r_1/{rel}" for rel in TREE)
    for rel, content_type in TREE.items():
        key = f"media/v_1/r_1/{rel}"
        info = storage.stat(key)
        assert (info.content_type, info.size) == (content_type, len(contents[rel]))
        assert read_all(storage, key) == contents[rel]
    assert [i.key for i in storage.list("media/v_1/r_1/")] == [i.key for i in infos]


def test_put_tree_refuses_symlinks(storage: Storage, tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    (out / "a.m4s").write_bytes(b"a")
    secret = tmp_path / "secret.txt"
    secret.write_text("secret")
    (out / "b.m4s").symlink_to(secret)
    with pytest.raises(ValueError, match="symlink"):
        storage.put_tree("media/v/r", out)
    assert not storage.exists("media/v/r/b.m4s")


@pytest.mark.parametrize(
    ("key", "content_type"),
    [
        ("a/master.m3u8", "application/vnd.apple.mpegurl"),
        ("a/MASTER.M3U8", "application/vnd.apple.mpegurl"),
        ("a/manifest.mpd", "application/dash+xml"),
        ("a/00001.m4s", "video/iso.segment"),
        ("a/init.mp4", "video/mp4"),
        ("a/poster.jpg", "image/jpeg"),
        ("a/storyboard.vtt", "text/vtt"),
        ("a/report.json", "application/json"),
        ("uploads/v/000000000000", "application/octet-stream"),
        ("a/.m3u8", "application/octet-stream"),  # a dotfile has no extension
        ("a.m3u8/file", "application/octet-stream"),
        ("a/x.jpeg", "application/octet-stream"),
    ],
)
def test_content_type_for(key: str, content_type: str) -> None:
    assert content_type_for(key) == content_type


# ------------------------------------------------------------------ bad keys

BAD_KEYS = [
    "",
    "../x",
    "a/../../x",
    "a/..",
    "./a",
    "/abs",
    "a//b",
    "a/",
    "a\\b",
    "a\x00b",
    "a\nb",
    f"a/{TEMP_PREFIX}x",
    "k" * 1025,
]

OPERATIONS: dict[str, Callable[[Storage, str, Path], object]] = {
    "stat": lambda s, k, _: s.stat(k),
    "exists": lambda s, k, _: s.exists(k),
    "put_bytes": lambda s, k, _: s.put_bytes(k, b"x"),
    "put_stream": lambda s, k, _: s.put_stream(k, iter([b"x"])),
    "put_file": lambda s, k, p: s.put_file(k, p),
    "open_range": lambda s, k, _: s.open_range(k),
    "download": lambda s, k, p: s.download(k, p.with_name("dl")),
    "delete": lambda s, k, _: s.delete(k),
    "presigned_get": lambda s, k, _: s.presigned_get(k, timedelta(minutes=5)),
    "presigned_put": lambda s, k, _: s.presigned_put(k, timedelta(minutes=5), None),
}


@pytest.mark.parametrize("operation", sorted(OPERATIONS))
def test_bad_keys_rejected(storage: Storage, tmp_path: Path, operation: str) -> None:
    source = tmp_path / "src.bin"
    source.write_bytes(b"x")
    for key in BAD_KEYS:
        with pytest.raises(ValueError) as caught:
            OPERATIONS[operation](storage, key, source)
        assert repr(key)[:40] in str(caught.value), (key, str(caught.value))
    assert storage.list("") == []
    assert not (tmp_path / "x").exists()
    assert not (tmp_path / "dl").exists()


@pytest.mark.parametrize("prefix", ["/abs", "../x", "a//b", "a\\b", "a/../"])
def test_bad_prefixes_rejected(storage: Storage, tmp_path: Path, prefix: str) -> None:
    with pytest.raises(ValueError, match="prefix"):
        storage.list(prefix)
    with pytest.raises(ValueError, match="prefix"):
        storage.delete_prefix(prefix)
    with pytest.raises(ValueError, match="prefix"):
        storage.put_tree(prefix, tmp_path)


# ------------------------------------------------------------------ streaming


def test_put_stream_of_25_mib(storage: Storage) -> None:
    hasher = hashlib.sha256()
    total = 25 * MiB + 12_345
    info = storage.put_stream(
        "uploads/v_big/000000000000", generated_stream(total, 1_000_003, hasher.update)
    )
    assert info.size == total
    assert storage.stat("uploads/v_big/000000000000").size == total
    reread = hashlib.sha256()
    biggest = 0
    for chunk in storage.open_range("uploads/v_big/000000000000"):
        reread.update(chunk)
        biggest = max(biggest, len(chunk))
    assert reread.hexdigest() == hasher.hexdigest()
    assert biggest <= CHUNK_SIZE
    tail = read_all(storage, "uploads/v_big/000000000000", total - 100, None)
    assert len(tail) == 100
    if isinstance(storage, S3Storage):
        assert info.etag.endswith('-3"'), info.etag  # three 10 MiB multipart parts


def test_failed_stream_keeps_the_old_object(storage: Storage) -> None:
    storage.put_bytes("uploads/v/0", b"old")

    def failing() -> Iterator[bytes]:
        for _ in range(11):  # past one 10 MiB S3 part: a multipart upload is under way
            yield b"n" * MiB
        raise RuntimeError("client went away")

    with pytest.raises(RuntimeError, match="client went away"):
        storage.put_stream("uploads/v/0", failing())
    assert read_all(storage, "uploads/v/0") == b"old"
    assert [i.key for i in storage.list("")] == ["uploads/v/0"]


MEMORY_CHILD = r"""
import hashlib, json, os, sys, tracemalloc
from pathlib import Path
from cdn.storage import LocalStorage, S3Storage
args = json.loads(sys.argv[1])
if args["kind"] == "local":
    storage = LocalStorage(Path(args["root"]))
else:
    storage = S3Storage(args["endpoint"], args["access"], args["secret"], args["bucket"])
size, chunk = args["size"], 256 * 1024
block = os.urandom(chunk)
hasher = hashlib.sha256()
def chunks():
    for n in range(0, size, chunk):
        piece = block[: min(chunk, size - n)]
        hasher.update(piece)
        yield piece
tracemalloc.start()
info = storage.put_stream(args["key"], chunks())
put_peak = tracemalloc.get_traced_memory()[1]
tracemalloc.reset_peak()
reread = hashlib.sha256()
for piece in storage.open_range(args["key"]):
    reread.update(piece)
read_peak = tracemalloc.get_traced_memory()[1]
print(json.dumps({"size": info.size, "sha": hasher.hexdigest(), "reread": reread.hexdigest(),
                  "put_peak": put_peak, "read_peak": read_peak}))
"""


def test_streaming_memory_is_bounded(storage: Storage) -> None:
    """put_stream / open_range of 64 MiB in a child process, measured with tracemalloc.

    A child, because moto's in-process server holds the whole object in memory. S3 uploads
    peak near three 10 MiB parts (minio copies each part while slicing it): the bound is
    3.5 parts, well under the 64 MiB object. Local writes hold one chunk.
    """
    size = 64 * MiB
    args: dict[str, object] = {"size": size, "key": "uploads/v_mem/000000000000"}
    if isinstance(storage, S3Storage):
        args |= {"kind": "s3", "endpoint": storage.endpoint, "bucket": storage.bucket}
        args |= {"access": ACCESS_KEY, "secret": SECRET_KEY}
        put_limit = int(3.5 * S3_PART_SIZE)
    else:
        assert isinstance(storage, LocalStorage)
        args |= {"kind": "local", "root": str(storage.root)}
        put_limit = 2 * MiB
    proc = subprocess.run(
        [sys.executable, "-c", MEMORY_CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result["size"] == size
    assert result["reread"] == result["sha"]
    print(
        f"peaks: put {result['put_peak'] / MiB:.1f} MiB, read {result['read_peak'] / MiB:.2f} MiB"
    )
    assert result["put_peak"] < put_limit < size, result
    assert result["read_peak"] < 2 * MiB, result
    assert storage.stat("uploads/v_mem/000000000000").size == size


def test_local_put_stream_writes_as_it_reads(tmp_path: Path) -> None:
    """The file grows while the generator is still producing: nothing is buffered whole."""
    storage = LocalStorage(tmp_path / "store")
    seen: list[int] = []

    def chunks() -> Iterator[bytes]:
        for _ in range(8):
            yield b"z" * MiB
            temps = list((tmp_path / "store" / "uploads").glob(f"{TEMP_PREFIX}*"))
            seen.append(sum(p.stat().st_size for p in temps))

    storage.put_stream("uploads/0", chunks())
    assert seen[-1] >= 6 * MiB, seen  # earlier chunks already on disk (modulo buffering)
    assert storage.stat("uploads/0").size == 8 * MiB
    assert list((tmp_path / "store" / "uploads").iterdir()) == [tmp_path / "store/uploads/0"]


# ------------------------------------------------------------------ presigned URLs


def test_presigned_urls(storage: Storage) -> None:
    key = "uploads/v_pre/000000000000"
    put_url = storage.presigned_put(key, timedelta(minutes=10), "video/mp4")
    get_url = storage.presigned_get(key, timedelta(minutes=10))
    if isinstance(storage, LocalStorage):
        assert (put_url, get_url) == (None, None)
        return
    assert put_url is not None and "X-Amz-Signature=" in put_url
    body = pattern(70_000, seed=5)
    put = httpx.put(put_url, content=body, headers={"Content-Type": "video/mp4"})
    assert put.status_code == 200, put.text
    info = storage.stat(key)
    assert (info.size, info.content_type) == (len(body), "video/mp4")
    get_url = storage.presigned_get(key, timedelta(minutes=10))
    assert get_url is not None and "X-Amz-Expires=600" in get_url
    got = httpx.get(get_url)
    assert got.status_code == 200
    assert got.content == body
    assert got.headers["etag"] == info.etag


# ------------------------------------------------------------------ readiness


def test_check_passes_when_reachable(storage: Storage) -> None:
    storage.check()
    storage.put_bytes("a/b", b"x")  # and really works
    assert storage.exists("a/b")


def test_s3_check_fails_when_unreachable() -> None:
    storage = S3Storage(f"127.0.0.1:{free_port()}", ACCESS_KEY, SECRET_KEY, "rf-none", retries=0)
    started = time.monotonic()
    with pytest.raises(StorageError):
        storage.check()
    with pytest.raises(StorageError) as caught:
        storage.stat("a/b")
    assert not isinstance(caught.value, ObjectNotFound)
    assert time.monotonic() - started < 10


def test_s3_check_fails_without_bucket(moto_endpoint: str) -> None:
    storage = S3Storage(moto_endpoint, ACCESS_KEY, SECRET_KEY, f"rf-{uuid.uuid4().hex[:16]}")
    with pytest.raises(StorageError, match="does not exist"):
        storage.check()
    storage.ensure_bucket()
    storage.ensure_bucket()  # idempotent
    storage.check()


def test_local_check_fails_when_root_is_gone(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    storage.check()
    (tmp_path / "store").rmdir()
    with pytest.raises(StorageError):
        storage.check()


def test_build_storage(tmp_path: Path, moto_endpoint: str) -> None:
    local = build_storage("local", root=tmp_path / "s")
    assert isinstance(local, LocalStorage) and local.root == (tmp_path / "s").resolve()
    s3 = build_storage(
        "s3",
        endpoint=f"http://{moto_endpoint}",
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        bucket="rf-built",
    )
    assert isinstance(s3, S3Storage) and s3.endpoint == moto_endpoint
    s3.ensure_bucket()
    assert s3.put_bytes("x/y.vtt", b"WEBVTT\n").content_type == "text/vtt"
    with pytest.raises(ValueError, match="root"):
        build_storage("local", root=None)
    with pytest.raises(ValueError, match="bucket"):
        build_storage("s3", endpoint="h:1", access_key="a", secret_key="b")
    with pytest.raises(ValueError, match="kind"):
        build_storage("ftp")


# ------------------------------------------------------------------ local confinement


@pytest.fixture
def confined(tmp_path: Path) -> tuple[LocalStorage, Path]:
    """A LocalStorage whose root holds links pointing outside it."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.m4s").write_bytes(b"secret")
    storage = LocalStorage(tmp_path / "store")
    (storage.root / "media").mkdir()
    (storage.root / "media" / "evil.m4s").symlink_to(outside / "secret.m4s")
    (storage.root / "media" / "evildir").symlink_to(outside, target_is_directory=True)
    return storage, outside


def test_symlink_out_of_root_is_not_readable(confined: tuple[LocalStorage, Path]) -> None:
    storage, outside = confined
    for key in ("media/evil.m4s", "media/evildir/secret.m4s"):
        with pytest.raises(ValueError, match="outside"):
            storage.stat(key)
        with pytest.raises(ValueError, match="outside"):
            storage.open_range(key)
        with pytest.raises(ValueError, match="outside"):
            storage.download(key, outside / "copy")
        with pytest.raises(ValueError, match="outside"):
            storage.delete(key)
    assert storage.list("") == []
    assert storage.list("media/evildir/") == []
    assert (outside / "secret.m4s").read_bytes() == b"secret"
    assert not (outside / "copy").exists()


def test_symlink_out_of_root_is_not_writable(confined: tuple[LocalStorage, Path]) -> None:
    storage, outside = confined
    with pytest.raises(ValueError, match="outside"):
        storage.put_bytes("media/evildir/new.m4s", b"x")
    with pytest.raises(ValueError, match="outside"):
        storage.put_bytes("media/evildir/sub/new.m4s", b"x")
    with pytest.raises(ValueError, match="outside"):
        storage.put_bytes("media/evil.m4s", b"overwrite")
    assert sorted(p.name for p in outside.iterdir()) == ["secret.m4s"]
    assert (outside / "secret.m4s").read_bytes() == b"secret"
    assert storage.delete_prefix("media/") == 0
    assert (outside / "secret.m4s").exists()


def test_symlink_inside_root_is_followed(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    storage.put_bytes("media/v/r/a.m4s", b"inside")
    (storage.root / "media" / "alias.m4s").symlink_to(storage.root / "media/v/r/a.m4s")
    assert read_all(storage, "media/alias.m4s") == b"inside"
    storage.delete("media/alias.m4s")  # removes the link, not its target
    assert read_all(storage, "media/v/r/a.m4s") == b"inside"


def test_local_writes_are_atomic_and_tidy(tmp_path: Path) -> None:
    storage = LocalStorage(tmp_path / "store")
    storage.put_bytes("media/v/r/a.m4s", b"one")
    storage.put_bytes("media/v/r/a.m4s", b"two")
    names = [p.name for p in (storage.root / "media/v/r").iterdir()]
    assert names == ["a.m4s"]
    storage.delete("media/v/r/a.m4s")
    assert list(storage.root.iterdir()) == []  # empty parent folders pruned
    storage.put_bytes("media/v/x", b"x")
    with pytest.raises(ValueError, match="prefix of other objects"):
        storage.put_bytes("media/v", b"x")
    with pytest.raises(ValueError, match="is an object"):
        storage.put_bytes("media/v/x/y", b"x")

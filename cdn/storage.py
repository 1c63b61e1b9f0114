"""Object storage for uploads and transcoded media: a local directory or S3 / MinIO.

Keys are '/'-separated relative strings (``uploads/v_abc/000000000000``,
``media/v_abc/r_123/master.m3u8``). Both implementations validate keys the same way
(`validate_key`), report the same `ObjectInfo`, derive content types from the same table
(`content_type_for`) and raise the same errors: `ObjectNotFound` for a missing key,
`StorageError` for a backend failure (retryable), `ValueError` for a bad key or range.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import os
import secrets
import stat as stat_mod
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import IO, Protocol, runtime_checkable
from urllib.parse import urlsplit

CHUNK_SIZE = 64 * 1024
"""Bytes per chunk yielded by `Storage.open_range` and per read when copying."""

S3_PART_SIZE = 10 * 1024 * 1024
"""Multipart part size for streams of unknown length (S3's minimum is 5 MiB, at most 10,000
parts: 10 MiB parts allow objects up to ~97 GiB). `S3Storage.put_stream` holds about three
parts in memory at its peak (minio copies each part while slicing it), whatever the size."""

TEMP_PREFIX = ".rf-tmp-"
"""Name prefix of LocalStorage's in-flight files; reserved, never a key segment."""

_CONTENT_TYPES = {
    ".m3u8": "application/vnd.apple.mpegurl",
    ".mpd": "application/dash+xml",
    ".m4s": "video/iso.segment",
    ".mp4": "video/mp4",
    ".jpg": "image/jpeg",
    ".vtt": "text/vtt",
    ".json": "application/json",
}
DEFAULT_CONTENT_TYPE = "application/octet-stream"


@dataclass(frozen=True)
class ObjectInfo:
    """What a backend knows about one stored object."""

    key: str
    size: int
    etag: str
    """Strong validator, quoted as HTTP sends it (RFC 9110 §8.8.3): ``'"abc..."'``."""
    last_modified: float
    """Unix seconds."""
    content_type: str


class StorageError(Exception):
    """The backend failed or cannot be reached (transient: the caller may retry)."""


class ObjectNotFound(StorageError):
    """No object is stored under the key."""


@runtime_checkable
class Storage(Protocol):
    """What the API and the workers need from an object store."""

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo: ...

    def put_stream(
        self, key: str, chunks: Iterable[bytes], content_type: str | None = None
    ) -> ObjectInfo: ...

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo: ...

    def put_tree(self, prefix: str, directory: Path) -> list[ObjectInfo]: ...

    def stat(self, key: str) -> ObjectInfo: ...

    def exists(self, key: str) -> bool: ...

    def list(self, prefix: str) -> list[ObjectInfo]: ...

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]: ...

    def download(self, key: str, path: Path) -> None: ...

    def delete(self, key: str) -> None: ...

    def delete_prefix(self, prefix: str) -> int: ...

    def presigned_put(
        self, key: str, expires: timedelta, content_type: str | None
    ) -> str | None: ...

    def presigned_get(self, key: str, expires: timedelta) -> str | None: ...

    def check(self) -> None: ...


# --------------------------------------------------------------------------- keys


def content_type_for(key: str) -> str:
    """The media type served for a key, from its extension (the one table both backends use)."""
    name = key.rsplit("/", 1)[-1]
    dot = name.rfind(".")
    if dot <= 0:
        return DEFAULT_CONTENT_TYPE
    return _CONTENT_TYPES.get(name[dot:].lower(), DEFAULT_CONTENT_TYPE)


def _check_chars(value: str, what: str) -> None:
    if "\\" in value:
        raise ValueError(f"bad storage {what} {value!r}: backslash")
    if any(ord(c) < 0x20 or c == "\x7f" for c in value):
        raise ValueError(f"bad storage {what} {value!r}: NUL or control character")
    if value.startswith("/"):
        raise ValueError(f"bad storage {what} {value!r}: absolute")
    if len(value.encode("utf-8")) > 1024:
        raise ValueError(f"bad storage {what} {value[:64]!r}...: longer than 1024 bytes")


def _check_segments(value: str, segments: list[str], what: str) -> None:
    for segment in segments:
        if not segment:
            raise ValueError(f"bad storage {what} {value!r}: empty segment ('//' or trailing '/')")
        if segment in (".", ".."):
            raise ValueError(f"bad storage {what} {value!r}: '{segment}' segment")
        if segment.startswith(TEMP_PREFIX):
            raise ValueError(f"bad storage {what} {value!r}: reserved name {TEMP_PREFIX!r}")


def validate_key(key: str) -> str:
    """Return `key` if it is a safe object key, else raise `ValueError` naming it.

    Refused: empty, absolute (leading '/'), '.' or '..' segments, empty segments ('//',
    trailing '/'), backslashes, NUL and other control characters, more than 1024 bytes, and
    the reserved temp-file prefix.
    """
    if not isinstance(key, str) or not key:
        raise ValueError(f"bad storage key {key!r}: empty")
    _check_chars(key, "key")
    _check_segments(key, key.split("/"), "key")
    return key


def validate_prefix(prefix: str) -> str:
    """Return `prefix` if it is a safe listing prefix ('' lists everything), else raise.

    A prefix is a key that may also end with '/' (or be empty); it matches keys by plain
    string prefix, as in S3 (``media/v_a`` matches ``media/v_abc/...``).
    """
    if not isinstance(prefix, str):
        raise ValueError(f"bad storage prefix {prefix!r}")
    if not prefix:
        return prefix
    _check_chars(prefix, "prefix")
    body = prefix[:-1] if prefix.endswith("/") else prefix
    _check_segments(prefix, body.split("/"), "prefix")
    return prefix


def _join_prefix(prefix: str, relative: str) -> str:
    if not prefix or prefix.endswith("/"):
        return prefix + relative
    return f"{prefix}/{relative}"


def _check_range(start: int, end: int | None) -> None:
    if start < 0 or (end is not None and end < start):
        raise ValueError(f"bad byte range [{start}, {end}]")


def _tree_files(directory: Path) -> list[tuple[str, Path]]:
    """(relative posix path, file) for every regular file under `directory`, sorted.

    Symlinks are refused rather than followed: a tree must not smuggle in outside files.
    """
    if not directory.is_dir():
        raise ValueError(f"put_tree: {directory} is not a directory")
    found: list[tuple[str, Path]] = []
    for dirpath, dirnames, filenames in os.walk(directory):
        base = Path(dirpath)
        for name in dirnames + filenames:
            path = base / name
            if path.is_symlink():
                raise ValueError(f"put_tree: refusing symlink {path}")
        for name in filenames:
            path = base / name
            found.append((path.relative_to(directory).as_posix(), path))
    return sorted(found)


# ----------------------------------------------------------------- local storage


class LocalStorage:
    """Objects as files under `root`; never reads or writes a path outside it.

    Writes go to a temp file in the destination directory, are fsynced and renamed into
    place (`os.replace`), so a reader sees the old object or the new one, never a torn
    one. The ETag is a hash of (device, inode, size, mtime_ns); each write sets the new
    file's mtime strictly after the replaced one's, so the ETag changes with the content.
    Content types always come from `content_type_for` (the `content_type` arguments are
    accepted for interface parity and ignored: nothing is stored beside the file).

    Symlinks inside the root are followed only while they stay inside it; one resolving
    outside raises `ValueError`. (This guards against misplaced links, not against a
    concurrent attacker with write access to the root.)
    """

    def __init__(self, root: Path) -> None:
        root = Path(root)
        root.mkdir(parents=True, exist_ok=True)
        self.root = root.resolve(strict=True)

    # -- paths

    def _inside(self, path: Path, key: str) -> Path:
        resolved = path.resolve(strict=False)
        if resolved != self.root and not resolved.is_relative_to(self.root):
            raise ValueError(f"storage key {key!r} resolves outside the storage root")
        return resolved

    def _read_path(self, key: str) -> Path:
        return self._inside(self.root / validate_key(key), key)

    def _write_path(self, key: str) -> Path:
        """The path to write `key` to, creating (checked) parent directories."""
        parts = validate_key(key).split("/")
        current = self.root
        for part in parts[:-1]:
            current = current / part
            if current.is_symlink() or current.exists():
                current = self._inside(current, key)
                if not current.is_dir():
                    raise ValueError(f"storage key {key!r}: {part!r} is an object, not a prefix")
            else:
                try:
                    current.mkdir(exist_ok=True)
                except OSError as exc:
                    raise StorageError(f"cannot create directory for {key!r}: {exc}") from exc
        target = current / parts[-1]
        if target.is_symlink():
            self._inside(target, key)
        if target.is_dir():
            raise ValueError(f"storage key {key!r} is a prefix of other objects")
        return target

    def _info(self, key: str, path: Path) -> ObjectInfo:
        try:
            st = path.stat()
        except (FileNotFoundError, NotADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"stat {key!r}: {exc}") from exc
        if not stat_mod.S_ISREG(st.st_mode):
            raise ObjectNotFound(key)
        token = f"{st.st_dev}:{st.st_ino}:{st.st_size}:{st.st_mtime_ns}".encode()
        etag = hashlib.blake2b(token, digest_size=16).hexdigest()
        return ObjectInfo(
            key=key,
            size=st.st_size,
            etag=f'"{etag}"',
            last_modified=st.st_mtime_ns / 1e9,
            content_type=content_type_for(key),
        )

    # -- writes

    def _write_atomic(self, key: str, chunks: Iterable[bytes]) -> ObjectInfo:
        target = self._write_path(key)
        tmp = target.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-{target.name[:64]}")
        try:
            with open(tmp, "xb") as fh:
                for chunk in chunks:
                    fh.write(chunk)
                fh.flush()
                os.fsync(fh.fileno())
                os.utime(fh.fileno(), ns=_next_mtime(target))
            os.replace(tmp, target)
        except OSError as exc:
            raise StorageError(f"write {key!r}: {exc}") from exc
        finally:
            tmp.unlink(missing_ok=True)
        return self._info(key, target)

    def put_stream(
        self, key: str, chunks: Iterable[bytes], content_type: str | None = None
    ) -> ObjectInfo:
        """Write `chunks` as they come (one chunk in memory at a time)."""
        return self._write_atomic(key, chunks)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        return self._write_atomic(key, [data])

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        with open(path, "rb") as src:
            return self._write_atomic(key, iter(lambda: src.read(CHUNK_SIZE * 16), b""))

    def put_tree(self, prefix: str, directory: Path) -> list[ObjectInfo]:
        """Store every file under `directory` at ``prefix/<relative path>``; sorted by key."""
        validate_prefix(prefix)
        infos = [
            self.put_file(_join_prefix(prefix, rel), path) for rel, path in _tree_files(directory)
        ]
        return sorted(infos, key=lambda info: info.key)

    # -- reads

    def stat(self, key: str) -> ObjectInfo:
        return self._info(key, self._read_path(key))

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str) -> list[ObjectInfo]:
        """Every object whose key starts with `prefix` (plain string match), sorted by key.

        Symlinked directories are not descended into; files that resolve outside the root
        are left out.
        """
        validate_prefix(prefix)
        base_dir = prefix.rsplit("/", 1)[0] if "/" in prefix else ""
        start = self.root / base_dir if base_dir else self.root
        try:
            if not self._inside(start, prefix).is_dir():
                return []
        except ValueError:
            return []
        infos: list[ObjectInfo] = []
        for dirpath, _dirnames, filenames in os.walk(start):
            for name in filenames:
                key = (Path(dirpath) / name).relative_to(self.root).as_posix()
                if name.startswith(TEMP_PREFIX) or not key.startswith(prefix):
                    continue
                with contextlib.suppress(ValueError, ObjectNotFound):
                    infos.append(self._info(key, self._read_path(key)))
        return sorted(infos, key=lambda info: info.key)

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end]`` (inclusive; ``end=None``: to the end) in 64 KiB chunks.

        The file is opened (and `ObjectNotFound` raised) before this returns; the chunks
        are read lazily. An `end` past the object is clamped; a `start` past it is a
        `ValueError` (except ``start=0`` on an empty object: no chunks).
        """
        _check_range(start, end)
        path = self._read_path(key)
        try:
            fh = open(path, "rb")  # noqa: SIM115 - closed by the generator
        except (FileNotFoundError, NotADirectoryError, IsADirectoryError) as exc:
            raise ObjectNotFound(key) from exc
        except OSError as exc:
            raise StorageError(f"open {key!r}: {exc}") from exc
        size = os.fstat(fh.fileno()).st_size
        if start >= size and not (start == 0 and size == 0):
            fh.close()
            raise ValueError(f"range start {start} past the end of {key!r} ({size} bytes)")
        last = size - 1 if end is None else min(end, size - 1)
        return _read_file_range(fh, start, last - start + 1)

    def download(self, key: str, path: Path) -> None:
        _write_file_atomic(path, self.open_range(key))

    # -- deletes

    def delete(self, key: str) -> None:
        """Remove the object (a symlink key removes the link, never its target)."""
        self._read_path(key)  # validates the key and refuses links leading outside
        path = self.root / key
        try:
            if path.is_symlink() or path.is_file():
                path.unlink()
        except FileNotFoundError:
            return
        except OSError as exc:
            raise StorageError(f"delete {key!r}: {exc}") from exc
        self._prune_dirs(path.parent)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (which must not be empty); returns the count."""
        if not prefix:
            raise ValueError("delete_prefix refuses the empty prefix (it would delete everything)")
        objects = self.list(prefix)
        for info in objects:
            self.delete(info.key)
        return len(objects)

    def _prune_dirs(self, directory: Path) -> None:
        """Remove now-empty directories up to (not including) the root."""
        while directory != self.root and directory.is_relative_to(self.root):
            try:
                directory.rmdir()
            except OSError:
                return
            directory = directory.parent

    # -- misc

    def presigned_put(self, key: str, expires: timedelta, content_type: str | None) -> str | None:
        """None: a local directory has no URLs to presign (uploads go through the API)."""
        validate_key(key)
        return None

    def presigned_get(self, key: str, expires: timedelta) -> str | None:
        """None: local objects are served by the origin route."""
        validate_key(key)
        return None

    def check(self) -> None:
        """Raise `StorageError` unless the root is a writable directory."""
        if not self.root.is_dir() or not os.access(self.root, os.W_OK | os.X_OK):
            raise StorageError(f"storage root {self.root} is not a writable directory")


def _next_mtime(target: Path) -> tuple[int, int]:
    """(atime_ns, mtime_ns) for a file replacing `target`: now, but after target's mtime."""
    now = time.time_ns()
    with contextlib.suppress(OSError):
        now = max(now, target.stat().st_mtime_ns + 1)
    return now, now


def _read_file_range(fh: IO[bytes], start: int, length: int) -> Iterator[bytes]:
    with fh:
        fh.seek(start)
        while length > 0:
            chunk = fh.read(min(CHUNK_SIZE, length))
            if not chunk:
                raise StorageError("object shrank while being read")
            length -= len(chunk)
            yield chunk


def _write_file_atomic(path: Path, chunks: Iterable[bytes]) -> None:
    """Write `chunks` to `path` via a temp file in its directory and `os.replace`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f"{TEMP_PREFIX}{secrets.token_hex(8)}-{path.name[:64]}")
    try:
        with open(tmp, "xb") as fh:
            for chunk in chunks:
                fh.write(chunk)
        os.replace(tmp, path)
    finally:
        tmp.unlink(missing_ok=True)


# -------------------------------------------------------------------- S3 storage


class _ChunkReader(io.RawIOBase):
    """A file-like ``read(n)`` over an iterable of byte chunks, buffering at most ``n``."""

    def __init__(self, chunks: Iterable[bytes]) -> None:
        super().__init__()
        self._chunks = iter(chunks)
        self._pending = b""
        self.total = 0

    def readable(self) -> bool:
        return True

    def read(self, size: int = -1) -> bytes:
        if size is None or size < 0:
            raise ValueError("_ChunkReader reads in bounded parts only")
        pieces: list[bytes] = []
        have = 0
        while have < size:
            chunk = self._pending or next(self._chunks, None)
            self._pending = b""
            if chunk is None:
                break
            chunk = bytes(chunk)
            if have + len(chunk) > size:
                chunk, self._pending = chunk[: size - have], chunk[size - have :]
            pieces.append(chunk)
            have += len(chunk)
        self.total += have
        return b"".join(pieces)


class S3Storage:
    """Objects in an S3 / MinIO bucket, through the `minio` client.

    Errors from minio / urllib3 become `ObjectNotFound` (NoSuchKey) or `StorageError`.
    Content types: the `content_type` argument when given, else `content_type_for(key)`;
    `list` reports `content_type_for(key)` (an S3 listing does not carry the type).
    """

    def __init__(
        self,
        endpoint: str,
        access_key: str,
        secret_key: str,
        bucket: str,
        secure: bool = False,
        region: str = "us-east-1",
        *,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        retries: int = 3,
        part_size: int = S3_PART_SIZE,
    ) -> None:
        import urllib3
        from minio import Minio

        split = urlsplit(endpoint if "://" in endpoint else f"//{endpoint}")
        if split.scheme:
            secure = split.scheme == "https"
        self.endpoint = split.netloc
        self.bucket = bucket
        self.part_size = part_size
        http = urllib3.PoolManager(
            timeout=urllib3.Timeout(connect=connect_timeout, read=read_timeout),
            maxsize=16,
            retries=urllib3.Retry(
                total=retries, backoff_factor=0.2, status_forcelist=[500, 502, 503, 504]
            ),
        )
        self.client = Minio(
            self.endpoint,
            access_key=access_key,
            secret_key=secret_key,
            secure=secure,
            region=region,
            http_client=http,
        )

    # -- errors

    @contextlib.contextmanager
    def _errors(self, key: str | None = None) -> Iterator[None]:
        """Map minio / urllib3 / socket failures to `ObjectNotFound` / `StorageError`."""
        import urllib3
        from minio.error import MinioException, S3Error

        try:
            yield
        except S3Error as exc:
            if exc.code in ("NoSuchKey", "NoSuchObject") and key is not None:
                raise ObjectNotFound(key) from exc
            if exc.code == "InvalidRange":
                raise ValueError(f"range not satisfiable for {key!r}") from exc
            raise StorageError(f"S3 {exc.code} on {self.bucket}/{key or ''}: {exc}") from exc
        except (MinioException, urllib3.exceptions.HTTPError, OSError) as exc:
            raise StorageError(f"S3 {self.endpoint} unavailable: {exc}") from exc

    # -- bucket

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists."""
        from minio.error import S3Error

        with self._errors():
            if self.client.bucket_exists(self.bucket):
                return
            try:
                self.client.make_bucket(self.bucket)
            except S3Error as exc:
                if exc.code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise

    def check(self) -> None:
        """Raise `StorageError` unless the endpoint answers and the bucket exists."""
        with self._errors():
            exists = self.client.bucket_exists(self.bucket)
        if not exists:
            raise StorageError(f"S3 bucket {self.bucket!r} does not exist")

    # -- writes

    def put_stream(
        self, key: str, chunks: Iterable[bytes], content_type: str | None = None
    ) -> ObjectInfo:
        """Upload an iterable of unknown length as a multipart upload of `part_size` parts.

        One part is read at a time (no parallel parts): memory peaks near three parts
        (minio copies a part while slicing it), whatever the object's size. A stream that
        fails leaves any previous object under `key` as it was (the upload is aborted).
        """
        validate_key(key)
        reader = _ChunkReader(chunks)
        with self._errors(key):
            self.client.put_object(
                self.bucket,
                key,
                reader,
                length=-1,
                part_size=self.part_size,
                num_parallel_uploads=1,
                content_type=content_type or content_type_for(key),
            )
        return self.stat(key)

    def put_bytes(self, key: str, data: bytes, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        with self._errors(key):
            self.client.put_object(
                self.bucket,
                key,
                io.BytesIO(data),
                length=len(data),
                content_type=content_type or content_type_for(key),
            )
        return self.stat(key)

    def put_file(self, key: str, path: Path, content_type: str | None = None) -> ObjectInfo:
        validate_key(key)
        with self._errors(key):
            self.client.fput_object(
                self.bucket,
                key,
                str(path),
                content_type=content_type or content_type_for(key),
                num_parallel_uploads=1,
            )
        return self.stat(key)

    def put_tree(self, prefix: str, directory: Path) -> list[ObjectInfo]:
        """Upload every file under `directory` to ``prefix/<relative path>``; sorted by key."""
        validate_prefix(prefix)
        infos = [
            self.put_file(_join_prefix(prefix, rel), path) for rel, path in _tree_files(directory)
        ]
        return sorted(infos, key=lambda info: info.key)

    # -- reads

    def stat(self, key: str) -> ObjectInfo:
        validate_key(key)
        with self._errors(key):
            obj = self.client.stat_object(self.bucket, key)
        modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
        return ObjectInfo(
            key=key,
            size=int(obj.size or 0),
            etag=_quote_etag(obj.etag),
            last_modified=modified,
            content_type=obj.content_type or content_type_for(key),
        )

    def exists(self, key: str) -> bool:
        try:
            self.stat(key)
        except ObjectNotFound:
            return False
        return True

    def list(self, prefix: str) -> list[ObjectInfo]:
        validate_prefix(prefix)
        infos: list[ObjectInfo] = []
        with self._errors():
            for obj in self.client.list_objects(self.bucket, prefix=prefix, recursive=True):
                if obj.is_dir or obj.object_name is None:
                    continue
                modified = obj.last_modified.timestamp() if obj.last_modified else 0.0
                infos.append(
                    ObjectInfo(
                        key=obj.object_name,
                        size=int(obj.size or 0),
                        etag=_quote_etag(obj.etag),
                        last_modified=modified,
                        content_type=content_type_for(obj.object_name),
                    )
                )
        return sorted(infos, key=lambda info: info.key)

    def open_range(self, key: str, start: int = 0, end: int | None = None) -> Iterator[bytes]:
        """Bytes ``[start, end]`` (inclusive; ``end=None``: to the end) in 64 KiB chunks.

        The GET is sent (and `ObjectNotFound` raised) before this returns; the body is
        streamed lazily. An `end` past the object is clamped by S3; a `start` past it is a
        `ValueError`.
        """
        validate_key(key)
        _check_range(start, end)
        length = 0 if end is None else end - start + 1
        with self._errors(key):
            response = self.client.get_object(self.bucket, key, offset=start, length=length)
        return self._stream(key, response)

    def _stream(self, key: str, response: object) -> Iterator[bytes]:
        try:
            with self._errors(key):
                yield from response.stream(CHUNK_SIZE)  # type: ignore[attr-defined]
        finally:
            response.close()  # type: ignore[attr-defined]
            response.release_conn()  # type: ignore[attr-defined]

    def download(self, key: str, path: Path) -> None:
        _write_file_atomic(path, self.open_range(key))

    # -- deletes

    def delete(self, key: str) -> None:
        validate_key(key)
        with self._errors(key):
            self.client.remove_object(self.bucket, key)

    def delete_prefix(self, prefix: str) -> int:
        """Delete every object under `prefix` (which must not be empty); returns the count."""
        from minio.deleteobjects import DeleteObject

        if not prefix:
            raise ValueError("delete_prefix refuses the empty prefix (it would delete everything)")
        keys = [info.key for info in self.list(prefix)]
        with self._errors():
            errors = list(self.client.remove_objects(self.bucket, (DeleteObject(k) for k in keys)))
        if errors:
            raise StorageError(f"delete_prefix {prefix!r}: {len(errors)} failed: {errors[0]}")
        return len(keys)

    # -- presigning

    def presigned_put(self, key: str, expires: timedelta, content_type: str | None) -> str | None:
        """A URL the client PUTs the object body to, valid for `expires` (1 s .. 7 days).

        SigV4 query presigning signs only the host, so `content_type` is not enforced: the
        caller tells the client which Content-Type to send.
        """
        validate_key(key)
        with self._errors(key):
            return self.client.presigned_put_object(self.bucket, key, expires=expires)

    def presigned_get(self, key: str, expires: timedelta) -> str | None:
        validate_key(key)
        with self._errors(key):
            return self.client.presigned_get_object(self.bucket, key, expires=expires)


def _quote_etag(etag: str | None) -> str:
    """S3 ETags as HTTP sends them: one pair of double quotes (RFC 9110 §8.8.3)."""
    return f'"{(etag or "").strip().strip(chr(34))}"'


# ----------------------------------------------------------------------- factory


def build_storage(
    kind: str,
    *,
    root: Path | None = None,
    endpoint: str | None = None,
    access_key: str | None = None,
    secret_key: str | None = None,
    bucket: str | None = None,
    secure: bool = False,
    region: str = "us-east-1",
) -> Storage:
    """A `LocalStorage` (kind "local", needs `root`) or an `S3Storage` (kind "s3").

    Makes no network call: S3 users call `S3Storage.ensure_bucket()` / `check()` themselves.
    """
    if kind == "local":
        if root is None:
            raise ValueError("local storage needs a root directory")
        return LocalStorage(root)
    if kind == "s3":
        missing = [
            name
            for name, value in (
                ("endpoint", endpoint),
                ("access_key", access_key),
                ("secret_key", secret_key),
                ("bucket", bucket),
            )
            if not value
        ]
        if missing:
            raise ValueError(f"s3 storage needs {', '.join(missing)}")
        return S3Storage(
            str(endpoint),
            str(access_key),
            str(secret_key),
            str(bucket),
            secure=secure,
            region=region,
        )
    raise ValueError(f"unknown storage kind {kind!r} (expected 'local' or 's3')")

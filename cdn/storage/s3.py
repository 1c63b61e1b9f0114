"""`S3Storage`: objects in an S3 / MinIO bucket, through the `minio` client."""

from __future__ import annotations

import builtins
import contextlib
import io
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import BinaryIO, cast
from urllib.parse import urlsplit

from cdn.storage.base import CHUNK_SIZE, ObjectInfo, ObjectNotFound, StorageError
from cdn.storage.files import _tree_files, _write_file_atomic
from cdn.storage.keys import _check_range, _join_prefix, validate_key, validate_prefix
from cdn.storage.mime import content_type_for

S3_PART_SIZE = 10 * 1024 * 1024
"""Multipart part size for streams of unknown length (S3's minimum is 5 MiB, at most 10,000
parts: 10 MiB parts allow objects up to ~97 GiB). `S3Storage.put_stream` holds about three
parts in memory at its peak (minio copies each part while slicing it), whatever the size."""


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
                cast(BinaryIO, reader),  # a RawIOBase: all minio reads is `read(n)`
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

    def abort_stale_writes(self, before: float) -> int:
        """Abort every incomplete multipart upload last active before `before` (Unix seconds).

        A writer killed mid-stream (`put_stream`, `fput_object` of a large file) never sends
        CompleteMultipartUpload nor AbortMultipartUpload, and S3 keeps its parts (and bills
        them) forever; ListMultipartUploads, ListParts and AbortMultipartUpload (S3 API
        reference) find and drop them. An upload's last activity is the later of its
        initiation and its newest part, so a long upload still sending parts is left alone.
        The minio client exposes these calls only as private methods. Returns the count.
        """
        from minio.error import S3Error

        aborted = 0
        with self._errors():
            for key, upload_id in self._uploads_started_before(before):
                if self._newest_part(key, upload_id) >= before:
                    continue
                try:
                    self.client._abort_multipart_upload(self.bucket, key, upload_id)
                except S3Error as exc:
                    if exc.code != "NoSuchUpload":  # completed or aborted meanwhile
                        raise
                    continue
                aborted += 1
        return aborted

    def _uploads_started_before(self, before: float) -> builtins.list[tuple[str, str]]:
        """(key, upload id) of the bucket's incomplete multipart uploads initiated before."""
        found: builtins.list[tuple[str, str]] = []
        key_marker: str | None = None
        upload_marker: str | None = None
        while True:
            page = self.client._list_multipart_uploads(
                self.bucket, key_marker=key_marker, upload_id_marker=upload_marker
            )
            for upload in page.uploads:
                started = upload.initiated_time.timestamp() if upload.initiated_time else 0.0
                if upload.upload_id and started < before:
                    found.append((upload.object_name, upload.upload_id))
            if not page.is_truncated or not page.uploads:
                return found
            # minio 7.2 drops NextUploadIdMarker: the last entry is the same marker.
            key_marker = page.uploads[-1].object_name
            upload_marker = page.uploads[-1].upload_id

    def _newest_part(self, key: str, upload_id: str) -> float:
        """When the upload's newest part arrived (Unix seconds; 0 with no part)."""
        newest = 0.0
        marker: str | None = None
        while True:
            page = self.client._list_parts(self.bucket, key, upload_id, part_number_marker=marker)
            for part in page.parts:
                if part.last_modified is not None:
                    newest = max(newest, part.last_modified.timestamp())
            if not page.is_truncated or not page.parts:
                return newest
            marker = str(page.parts[-1].part_number)

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

"""What every storage backend shares: `ObjectInfo`, the error tree and the `Storage` protocol.

Keys are '/'-separated relative strings (``uploads/v_abc/000000000000``,
``media/v_abc/r_123/master.m3u8``). Both implementations validate keys the same way
(`validate_key`), report the same `ObjectInfo`, derive content types from the same table
(`content_type_for`) and raise the same errors: `ObjectNotFound` for a missing key,
`StorageError` for a backend failure (retryable), `ValueError` for a bad key or range.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Protocol, runtime_checkable

CHUNK_SIZE = 64 * 1024
"""Bytes per chunk yielded by `Storage.open_range` and per read when copying."""


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

    def abort_stale_writes(self, before: float) -> int: ...

    def presigned_put(
        self, key: str, expires: timedelta, content_type: str | None
    ) -> str | None: ...

    def presigned_get(self, key: str, expires: timedelta) -> str | None: ...

    def check(self) -> None: ...

"""Object storage for uploads and transcoded media: a local directory or S3 / MinIO.

`build_storage` picks the backend; every public name is re-exported here, so callers import
from `cdn.storage` only. Where each concept lives:

- `base`: `ObjectInfo`, `StorageError` / `ObjectNotFound`, the `Storage` protocol, `CHUNK_SIZE`;
- `keys`: `validate_key`, `validate_prefix`, the reserved `TEMP_PREFIX`, byte-range checks;
- `mime`: `content_type_for` and its extension table;
- `files`: local-disk helpers both backends use (tree walk, atomic download);
- `local`: `LocalStorage`;
- `s3`: `S3Storage`, `S3_PART_SIZE`.
"""

from __future__ import annotations

from pathlib import Path

from cdn.storage.base import CHUNK_SIZE, ObjectInfo, ObjectNotFound, Storage, StorageError
from cdn.storage.keys import TEMP_PREFIX, validate_key, validate_prefix
from cdn.storage.local import LocalStorage
from cdn.storage.mime import DEFAULT_CONTENT_TYPE, content_type_for
from cdn.storage.s3 import S3_PART_SIZE, S3Storage

__all__ = [
    "CHUNK_SIZE",
    "DEFAULT_CONTENT_TYPE",
    "S3_PART_SIZE",
    "TEMP_PREFIX",
    "LocalStorage",
    "ObjectInfo",
    "ObjectNotFound",
    "S3Storage",
    "Storage",
    "StorageError",
    "build_storage",
    "content_type_for",
    "validate_key",
    "validate_prefix",
]


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

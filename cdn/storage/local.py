"""`LocalStorage`: objects as files under a root directory, written atomically."""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
import stat as stat_mod
import time
from collections.abc import Iterable, Iterator
from datetime import timedelta
from pathlib import Path
from typing import IO

from cdn.storage.base import CHUNK_SIZE, ObjectInfo, ObjectNotFound, StorageError
from cdn.storage.files import _tree_files, _write_file_atomic
from cdn.storage.keys import (
    TEMP_PREFIX,
    _check_range,
    _join_prefix,
    validate_key,
    validate_prefix,
)
from cdn.storage.mime import content_type_for


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

    def abort_stale_writes(self, before: float) -> int:
        """Remove in-flight temp files last written before `before` (Unix seconds).

        A writer killed mid-write (SIGKILL skips the `finally` that unlinks its temp file)
        leaves a `TEMP_PREFIX` file beside the object it was writing: the local counterpart
        of an incomplete S3 multipart upload. A live writer keeps its file's mtime fresh.
        Returns the count.
        """
        removed = 0
        for dirpath, _dirnames, filenames in os.walk(self.root):
            for name in filenames:
                if not name.startswith(TEMP_PREFIX):
                    continue
                path = Path(dirpath) / name
                try:
                    if path.lstat().st_mtime < before:
                        path.unlink()
                        removed += 1
                        self._prune_dirs(path.parent)
                except FileNotFoundError:
                    continue
                except OSError as exc:
                    raise StorageError(f"remove stale temp file {path}: {exc}") from exc
        return removed

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

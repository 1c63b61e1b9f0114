"""Local-disk helpers both backends use: walking a tree to upload, writing a download atomically."""

from __future__ import annotations

import os
import secrets
from collections.abc import Iterable
from pathlib import Path

from cdn.storage.keys import TEMP_PREFIX


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

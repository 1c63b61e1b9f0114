"""`reelforge catalog add|remove|match`: the copyright reference catalog (audio fingerprints)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from cli.exit_codes import EXIT_OK, EXIT_REJECTED


def _catalog_engine() -> tuple[Any, Any]:
    """(engine, settings): the configured database (`REELFORGE_*`: the embedded one under
    REELFORGE_DATA_DIR), with its schema; raises `SettingsError` on bad settings."""
    from api.core.db import create_schema, sync_engine
    from api.core.settings import Settings

    settings = Settings.from_env()
    engine = sync_engine(settings)
    create_schema(engine)
    return engine, settings


def _fingerprint_file(path: str, query: bool = False) -> Any:
    """The landmark fingerprint of any audio/video file's first audio stream (PyAV), as a
    reference or (denser) as a query."""
    import av

    from classifiers.fingerprint import DEFAULT_PARAMS, QUERY_PARAMS, fingerprint, load_audio

    if not Path(path).is_file():
        raise CatalogInputError(f"{path}: no such file")
    try:
        samples = load_audio(path)
    except (ValueError, av.FFmpegError, OSError) as exc:
        raise CatalogInputError(f"{path}: not a media file with audio ({exc})") from None
    return fingerprint(samples, QUERY_PARAMS if query else DEFAULT_PARAMS)


class CatalogInputError(ValueError):
    """A file given to `reelforge catalog` cannot be read as audio (exit 2, one line)."""


def cmd_catalog_add(args: argparse.Namespace) -> int:
    """`reelforge catalog add FILE... --owner NAME [--policy block|mute|allow]`: fingerprint
    every file (all are read before anything is written), then store them as references."""
    from api.core.settings import SettingsError
    from classifiers import catalog

    try:
        prints = [(Path(path).name, _fingerprint_file(path)) for path in args.files]
        for (_, print_), path in zip(prints, args.files, strict=True):
            if len(print_) == 0:
                raise CatalogInputError(f"{path}: no landmarks (silent or too short)")
        engine, _ = _catalog_engine()
    except (CatalogInputError, SettingsError) as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    try:
        with engine.begin() as conn:
            for name, print_ in prints:
                ref_id = catalog.add_reference(conn, name, args.owner, print_, args.policy)
                print(
                    f"added {name} (ref {ref_id}, {print_.duration_s:.1f} s, "
                    f"{len(print_)} hashes) for {args.owner}, policy {args.policy}"
                )
    finally:
        engine.dispose()
    return EXIT_OK


def cmd_catalog_remove(args: argparse.Namespace) -> int:
    """`reelforge catalog remove NAME...`: drop references (all names must exist)."""
    from api.core.settings import SettingsError
    from classifiers import catalog

    try:
        engine, _ = _catalog_engine()
    except SettingsError as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    try:
        with engine.begin() as conn:
            missing = catalog.remove_by_name(conn, args.names)
    finally:
        engine.dispose()
    if missing:
        print(
            f"reelforge: input rejected: not in the catalog: {', '.join(missing)} "
            "(nothing removed)",
            file=sys.stderr,
        )
        return EXIT_REJECTED
    for name in dict.fromkeys(args.names):
        print(f"removed {name}")
    return EXIT_OK


def cmd_catalog_match(args: argparse.Namespace) -> int:
    """`reelforge catalog match FILE [--json]`: the best reference, or null / "no match"."""
    from api.core.settings import SettingsError
    from classifiers import catalog

    try:
        print_ = _fingerprint_file(args.file, query=True)
        engine, settings = _catalog_engine()
    except (CatalogInputError, SettingsError) as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    try:
        with engine.connect() as conn:
            found = catalog.match(conn, print_, min_score=settings.fingerprint_min_score)
            stale = catalog.stale_references(conn)
    finally:
        engine.dispose()
    if stale:
        print(
            f"reelforge: warning: {len(stale)} reference(s) were fingerprinted by an older "
            "version and cannot match; add their files again or remove them",
            file=sys.stderr,
        )
    if args.json:
        print(json.dumps(found.to_json() if found else None))
    elif found is None:
        print(f"{args.file}: no match")
    else:
        print(
            f"{args.file}: {found.name} ({found.owner}) from {found.offset_s:.2f} s, "
            f"score {found.score}, policy {found.policy}"
        )
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `catalog` subcommand and its `add`, `remove` and `match`."""
    catalog = sub.add_parser("catalog", help="the copyright reference catalog (audio fingerprints)")
    catalog_sub = catalog.add_subparsers(dest="catalog_command", required=True)
    catalog_add = catalog_sub.add_parser("add", help="fingerprint files into the catalog")
    catalog_add.add_argument("files", nargs="+", metavar="FILE")
    catalog_add.add_argument("--owner", required=True, help="the rights holder")
    catalog_add.add_argument(
        "--policy",
        choices=("block", "mute", "allow"),
        default="block",
        help="what happens to uploads that use it (default block)",
    )
    catalog_add.set_defaults(run=cmd_catalog_add)
    catalog_remove = catalog_sub.add_parser("remove", help="remove references by name")
    catalog_remove.add_argument("names", nargs="+", metavar="NAME", help="as `add` printed it")
    catalog_remove.set_defaults(run=cmd_catalog_remove)
    catalog_match = catalog_sub.add_parser("match", help="the catalog's best match for a file")
    catalog_match.add_argument("file", metavar="FILE")
    catalog_match.add_argument("--json", action="store_true", help="print JSON (null: none)")
    catalog_match.set_defaults(run=cmd_catalog_match)

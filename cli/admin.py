"""Operator commands: `reelforge moderator grant|revoke` and `reelforge edge-config`."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from cli.exit_codes import EXIT_OK, EXIT_REJECTED


def cmd_moderator(args: argparse.Namespace) -> int:
    """`reelforge moderator grant|revoke HANDLE`: set `users.role` on the configured database
    (`REELFORGE_*`, or `--data-dir` for the embedded one); the only way to make a moderator."""
    from api.core.db import create_schema, sync_engine
    from api.core.identity import MODERATOR, USER
    from api.core.settings import Settings, SettingsError
    from api.moderation.roles import set_role

    environ = dict(os.environ)
    if args.data_dir is not None:
        environ["REELFORGE_DATA_DIR"] = str(args.data_dir)
    try:
        settings = Settings.from_env(environ)
    except SettingsError as exc:
        print(f"reelforge: bad settings: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    role = MODERATOR if args.action == "grant" else USER
    engine = sync_engine(settings)
    try:
        create_schema(engine)
        with engine.begin() as conn:
            found = set_role(conn, args.handle, role)
    finally:
        engine.dispose()
    if not found:
        print(f"reelforge: no such user: {args.handle}", file=sys.stderr)
        return EXIT_REJECTED
    print(f"{args.handle} is now a {role}")
    return EXIT_OK


def cmd_edge_config(args: argparse.Namespace) -> int:
    """`reelforge edge-config`: the nginx edge configuration (cdn/edge.py) for an origin."""
    from cdn.edge import EdgeConfig, EdgeConfigError, render

    config = EdgeConfig(
        origin=args.origin,
        listen=args.listen,
        cache_dir=args.cache_dir,
        media_path=args.media_path,
        max_size=args.max_size,
    )
    try:
        text = render(config)
    except EdgeConfigError as exc:
        print(f"reelforge: bad edge configuration: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    if args.out:
        out = Path(args.out)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(text)
        os.replace(tmp, out)
    else:
        sys.stdout.write(text)
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """The `edge-config` and `moderator` subcommands."""
    edge = sub.add_parser("edge-config", help="the nginx CDN edge configuration for an origin")
    edge.add_argument("--origin", required=True, help="the origin, http(s)://host[:port]")
    edge.add_argument("--listen", required=True, help="HOST:PORT the edge listens on")
    edge.add_argument("--cache-dir", required=True, help="the edge's cache directory")
    edge.add_argument("--media-path", default="/media", help="the origin's media route")
    edge.add_argument("--max-size", default="10g", help="cache size limit (nginx units)")
    edge.add_argument("--out", default=None, help="write here instead of stdout")
    edge.set_defaults(run=cmd_edge_config)
    moderator = sub.add_parser("moderator", help="grant or revoke the moderator role")
    moderator.add_argument("action", choices=("grant", "revoke"))
    moderator.add_argument("handle")
    moderator.add_argument("--data-dir", default=None, help="overrides REELFORGE_DATA_DIR")
    moderator.set_defaults(run=cmd_moderator)

"""`reelforge` command line: probe, transcode, sample, serve, catalog, moderator, edge-config,
feed-eval, feed-train.

Exit codes: 0 done; 2 the input was rejected, or `serve` was given bad settings (one line on
stderr naming why); 1 our failure (cli/exit_codes.py).

One module per concept: media.py (probe, transcode, sample), serve.py (and demo.py, its
`--demo` client), admin.py (moderator, edge-config), catalog.py (the copyright catalog),
feed_eval.py (feed-eval and feed-train: the For You models, evaluated offline and trained).
"""

from __future__ import annotations

import argparse
import os
import sys

from cli import admin, catalog, feed_eval, media, serve
from cli.exit_codes import EXIT_FAILURE, EXIT_REJECTED


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="reelforge", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    # In this order in `--help`: probe, transcode, sample, serve, edge-config, moderator, catalog,
    # feed-eval.
    for module in (media, serve, admin, catalog, feed_eval):
        module.add_parsers(sub)
    return parser


def single_threaded_libraries() -> None:
    """Keep numpy's BLAS from starting a thread pool: the CLI needs none, and a process with
    no native threads can fork its job child instead of spawning it (no re-import)."""
    for name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(name, "1")


def main(argv: list[str] | None = None) -> int:
    single_threaded_libraries()
    from engine.errors import InputRejected

    args = build_parser().parse_args(argv)
    try:
        return int(args.run(args))
    except InputRejected as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    except FileNotFoundError as exc:
        print(f"reelforge: input rejected: no such file: {exc.filename}", file=sys.stderr)
        return EXIT_REJECTED
    except KeyboardInterrupt:
        return 130
    except Exception as exc:
        print(f"reelforge: failed: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILURE

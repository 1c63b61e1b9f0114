"""`reelforge feed-eval --interactions FILE.csv [--json]`: the offline evaluation of the For
You models on an interaction log (issue 17; `recsys.evaluate`). `reelforge feed-train
--interactions FILE.csv --out DIR`: the retrieval model as the next version of a model folder
(`recsys.artifact`; what `REELFORGE_FEED_MODEL_DIR` serves)."""

from __future__ import annotations

import argparse
import json
import os
import sys

from cli.exit_codes import EXIT_OK, EXIT_REJECTED


def cmd_feed_eval(args: argparse.Namespace) -> int:
    from recsys.data import InteractionsError, load_csv
    from recsys.evaluate import evaluate, table

    if not 0.0 < args.train_fraction < 1.0:
        print("reelforge: input rejected: --train-fraction must be in (0, 1)", file=sys.stderr)
        return EXIT_REJECTED
    try:
        log = load_csv(args.interactions)
        report = evaluate(log, train_fraction=args.train_fraction, threads=args.threads)
    except (InteractionsError, ValueError) as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    print(json.dumps(report.as_json()) if args.json else table(report))
    return EXIT_OK


def cmd_feed_train(args: argparse.Namespace) -> int:
    from recsys.artifact import train_artifact
    from recsys.data import InteractionsError, load_csv

    try:
        log = load_csv(args.interactions)
    except InteractionsError as exc:
        print(f"reelforge: input rejected: {exc}", file=sys.stderr)
        return EXIT_REJECTED
    version = train_artifact(log, args.out, threads=args.threads, keep=args.keep)
    print(json.dumps({"version": version, "dir": str(args.out), "interactions": len(log)}))
    return EXIT_OK


def add_parsers(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    feed_eval = sub.add_parser(
        "feed-eval", help="offline evaluation of the For You models on an interaction log"
    )
    feed_eval.add_argument(
        "--interactions", required=True, metavar="FILE.csv", help="user,item,timestamp[,rating]"
    )
    feed_eval.add_argument("--json", action="store_true", help="print JSON")
    feed_eval.add_argument(
        "--train-fraction",
        type=float,
        default=0.8,
        help="the share of interactions (oldest first) to train on (default 0.8)",
    )
    feed_eval.add_argument(
        "--threads",
        type=int,
        default=min(2, os.cpu_count() or 1),
        help="solver threads (default min(2, CPUs); BLAS stays on one)",
    )
    feed_eval.set_defaults(run=cmd_feed_eval)
    train = sub.add_parser("feed-train", help="write the For You retrieval model's next version")
    train.add_argument("--interactions", required=True, metavar="FILE.csv")
    train.add_argument("--out", required=True, metavar="DIR", help="the model folder")
    train.add_argument("--keep", type=int, default=3, help="versions kept (default 3)")
    train.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    train.set_defaults(run=cmd_feed_train)

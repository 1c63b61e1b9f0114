"""The For You offline evaluation on MovieLens 100K (issue 17, "Offline evaluation on real
data").

    .venv/bin/python bench/feed_eval_ml100k.py                     # table, then the JSON
    .venv/bin/python bench/feed_eval_ml100k.py --results bench/feed_eval_results.json

Gets the data at run time, as the issue asks: `pip download --no-deps recbole==1.2.1` into a
temporary folder, reads `recbole/dataset_example/ml-100k/ml-100k.inter` from the wheel (a zip)
and writes it as `user,item,timestamp,rating` to a temporary CSV, then runs
`recsys.evaluate.evaluate` on it once (what `reelforge feed-eval --interactions CSV` runs),
printing the text table and the `--json` object of that one run. MovieLens' licence forbids
redistributing the data: nothing of it is kept or committed (the results file holds figures).
"""

from __future__ import annotations

import argparse
import csv
import io
import json
import os
import subprocess
import sys
import tempfile
import time
import zipfile
from pathlib import Path

WHEEL = "recbole==1.2.1"
MEMBER = "recbole/dataset_example/ml-100k/ml-100k.inter"


def download_csv(folder: Path) -> Path:
    """The ML-100K ratings from the recbole wheel, as `user,item,timestamp,rating`."""
    subprocess.run(
        [sys.executable, "-m", "pip", "download", "--no-deps", "-q", WHEEL, "-d", str(folder)],
        check=True,
    )
    wheel = next(folder.glob("recbole-1.2.1-*.whl"))
    out = folder / "ml-100k.csv"
    with zipfile.ZipFile(wheel) as archive, open(out, "w", newline="") as handle:
        text = io.TextIOWrapper(archive.open(MEMBER), encoding="utf-8")
        header = next(text).rstrip("\n").split("\t")  # user_id:token item_id:token rating ...
        names = [column.split(":")[0] for column in header]
        at = [names.index(n) for n in ("user_id", "item_id", "timestamp", "rating")]
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "timestamp", "rating"])
        for line in text:
            fields = line.rstrip("\n").split("\t")
            writer.writerow([fields[i] for i in at])
    return out


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--results", type=Path, help="write the JSON and timings here")
    parser.add_argument("--train-fraction", type=float, default=0.8, help="the temporal cutoff")
    parser.add_argument("--threads", type=int, default=min(2, os.cpu_count() or 1))
    args = parser.parse_args()
    from recsys.data import load_csv
    from recsys.evaluate import evaluate, table

    with tempfile.TemporaryDirectory() as tmp:
        log = load_csv(download_csv(Path(tmp)))
    started = time.perf_counter()
    report = evaluate(log, train_fraction=args.train_fraction, threads=args.threads)
    seconds = time.perf_counter() - started
    text = table(report)
    result = report.as_json()
    print(text)
    print(json.dumps(result, indent=2))
    print(f"feed-eval: {seconds:.1f} s wall")
    if args.results:
        best = report.best_baseline()
        result |= {
            "train_fraction": args.train_fraction,
            "served_vs_most_popular": round(
                report.models[report.served].ndcg / report.models["most_popular"].ndcg, 3
            ),
            "best_baseline": best,
            "served_minus_best_ci": [round(v, 4) for v in report.served_vs_best_ci()],
            "served_choice": report.served_choice,
            "table": text.splitlines(),
            "wall_seconds": round(seconds, 1),
        }
        args.results.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

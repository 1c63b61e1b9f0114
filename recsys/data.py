"""Interaction logs and their temporal split (issue 17, "Offline evaluation on real data").

A log is a CSV with the header `user,item,timestamp[,rating]` (any column order; extra columns
are ignored). Users and items are any strings; timestamps any number that orders (seconds,
milliseconds). A rating, when there is one, makes an interaction strong at `STRONG_RATING` and
over.

The split is temporal: everything before a cutoff (the `train_fraction` quantile of the
timestamps) is training, and a test user is one with interactions on both sides, tested on their
future: the items after the cutoff that were in the training catalogue and that they had not
interacted with before (seen items are excluded from every ranking, so they cannot be relevant).
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt
from scipy import sparse

STRONG_RATING = 4.0
REQUIRED = ("user", "item", "timestamp")


class InteractionsError(ValueError):
    """The CSV cannot be read as an interaction log (the CLI exits 2 with this message)."""


@dataclass(frozen=True)
class Interactions:
    """A log, one row per interaction: codes into `users`/`items`, times, ratings (NaN: none),
    and optionally each row's training weight (`recsys.signals`: the service's own events,
    negative for a quick skip), which then replaces the strong/ordinary weighting."""

    users: npt.NDArray[np.str_]
    items: npt.NDArray[np.str_]
    user: npt.NDArray[np.int64]
    item: npt.NDArray[np.int64]
    time: npt.NDArray[np.float64]
    rating: npt.NDArray[np.float64]
    weight: npt.NDArray[np.float32] | None = None

    @property
    def positive(self) -> npt.NDArray[np.bool_]:
        """The rows that say the user wants the item (every row without weights)."""
        if self.weight is None:
            return np.ones(len(self.user), dtype=bool)
        return self.weight > 0

    @property
    def strong(self) -> npt.NDArray[np.bool_]:
        """Rated `STRONG_RATING` or over; without ratings every interaction is strong."""
        rated = ~np.isnan(self.rating)
        return np.where(rated, np.nan_to_num(self.rating) >= STRONG_RATING, True)

    def __len__(self) -> int:
        return len(self.user)

    def subset(self, mask: npt.NDArray[np.bool_]) -> Interactions:
        return Interactions(
            self.users,
            self.items,
            self.user[mask],
            self.item[mask],
            self.time[mask],
            self.rating[mask],
            None if self.weight is None else self.weight[mask],
        )


def from_columns(
    users: list[str], items: list[str], times: list[float], ratings: list[float] | None = None
) -> Interactions:
    """A log from parallel columns (`ratings` None: no rating column)."""
    if not users:
        raise InteractionsError("no interactions")
    user_names, user = np.unique(np.asarray(users, dtype=str), return_inverse=True)
    item_names, item = np.unique(np.asarray(items, dtype=str), return_inverse=True)
    rating = np.full(len(users), np.nan) if ratings is None else np.asarray(ratings, float)
    return Interactions(
        user_names,
        item_names,
        user.astype(np.int64),
        item.astype(np.int64),
        np.asarray(times, dtype=np.float64),
        rating,
    )


def load_csv(path: str | Path) -> Interactions:
    """Read a `user,item,timestamp[,rating]` CSV; raises `InteractionsError` on a bad file."""
    with open(path, newline="", encoding="utf-8") as handle:
        reader = csv.reader(handle)
        header = [name.strip().lower() for name in next(reader, [])]
        missing = [name for name in REQUIRED if name not in header]
        if missing:
            raise InteractionsError(
                f"{path}: the header must name user,item,timestamp[,rating] (missing "
                f"{','.join(missing)})"
            )
        at = [header.index(name) for name in REQUIRED]
        rated = header.index("rating") if "rating" in header else None
        users: list[str] = []
        items: list[str] = []
        times: list[float] = []
        ratings: list[float] = []
        for line, row in enumerate(reader, start=2):
            if not row:
                continue
            try:
                users.append(row[at[0]])
                items.append(row[at[1]])
                times.append(float(row[at[2]]))
                if rated is not None:
                    ratings.append(float(row[rated]))
            except (IndexError, ValueError):
                raise InteractionsError(f"{path}: line {line}: not user,item,timestamp") from None
    return from_columns(users, items, times, ratings if rated is not None else None)


@dataclass(frozen=True)
class TrainSet:
    """What a model may see: the interactions before `now`, as a users × items matrix of
    weights (a strong interaction weighs `strong_weight`, any other 1; repeats add up)."""

    log: Interactions
    now: float
    matrix: sparse.csr_matrix

    @property
    def n_users(self) -> int:
        return int(self.matrix.shape[0])

    @property
    def n_items(self) -> int:
        return int(self.matrix.shape[1])


def train_set(log: Interactions, now: float, strong_weight: float = 2.0) -> TrainSet:
    """The part of `log` before `now` (the whole catalogue and user codes are kept: a code
    with no interaction is an empty row or column)."""
    past = log.subset(log.time < now)
    if past.weight is not None:
        weights = past.weight.astype(np.float32)
    else:
        weights = np.where(past.strong, strong_weight, 1.0).astype(np.float32)
    shape = (len(log.users), len(log.items))
    matrix = sparse.csr_matrix((weights, (past.user, past.item)), shape=shape)
    matrix.sum_duplicates()
    return TrainSet(past, now, matrix)


@dataclass(frozen=True)
class Split:
    """Training data, and for each test user the items of their future (`relevant[i]` for
    `test_users[i]`)."""

    train: TrainSet
    test_users: npt.NDArray[np.int64]
    relevant: list[npt.NDArray[np.int64]]

    @property
    def cutoff(self) -> float:
        return self.train.now


def cutoff_at(log: Interactions, train_fraction: float) -> float:
    """The time before which `train_fraction` of the interactions lie (a timestamp that
    occurs in the log, so ties stay on one side)."""
    times = np.sort(log.time)
    index = min(max(int(len(times) * train_fraction), 1), len(times) - 1)
    return float(times[index])


def temporal_split(
    log: Interactions, train_fraction: float = 0.8, strong_weight: float = 2.0
) -> Split:
    """Train on the interactions before the cutoff, test each user that has some on their
    later ones (new to them, in the training catalogue)."""
    now = cutoff_at(log, train_fraction)
    train = train_set(log, now, strong_weight)
    known_items = np.asarray(train.matrix.sum(axis=0)).ravel() > 0
    # Only what the user wanted is relevant (a weighted log's quick skips are not).
    future = log.subset((log.time >= now) & known_items[log.item] & log.positive)
    seen = train.matrix
    test_users: list[int] = []
    relevant: list[npt.NDArray[np.int64]] = []
    order = np.argsort(future.user, kind="stable")
    users, starts = np.unique(future.user[order], return_index=True)
    # (np.split of nothing is one empty piece: no future, no test users.)
    chunks = np.split(future.item[order], starts[1:]) if len(users) else []
    for user, chunk in zip(users, chunks, strict=True):
        history = seen.indices[seen.indptr[user] : seen.indptr[user + 1]]
        if len(history) == 0:
            continue  # a user new after the cutoff: nothing personal to test
        new = np.setdiff1d(chunk, history)
        if len(new):
            test_users.append(int(user))
            relevant.append(new.astype(np.int64))
    return Split(train, np.asarray(test_users, dtype=np.int64), relevant)

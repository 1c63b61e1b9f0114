"""The service's own events as training weights (issue 17, "Learning loop": "completion and
rewatch above share above comment above like, follow-from-video strong, a skip under 2 s
negative").

One weight per (viewer, video) pair, from everything the viewer did with the video:

    completed 4 · loop (a rewatch) 4 · share 3 · comment 2 · like 1.5 · follow from it 5

summed. A pair with none of those counts 1 when the viewer watched it at least
`QUICK_SKIP_MS` (the `watch_ms` events summed) or played it without skipping, and
`QUICK_SKIP` (−2, negative feedback: `implicit`'s iALS reads a negative confidence as "does
not want it", with that much weight) when they skipped it before `QUICK_SKIP_MS`. "Not
interested" makes the pair −4 whatever else happened. Impressions alone, and a pair that adds
up to 0, are left out.

A follow is "from a video" when the follower did something with one of the followee's videos
within `FOLLOW_WINDOW_MS` of the follow (clients batch their events, so before or after it):
the nearest such video gets the follow's weight. A follow with no such video (from a profile)
adds nothing here.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import numpy.typing as npt

from recsys.data import Interactions

COMPLETED, LOOP, SHARE, COMMENT, LIKE, FOLLOW = 4.0, 4.0, 3.0, 2.0, 1.5, 5.0
WATCHED, QUICK_SKIP, NOT_INTERESTED = 1.0, -2.0, -4.0
QUICK_SKIP_MS = 2_000
FOLLOW_WINDOW_MS = 600_000

# Event kinds (`watch_events.kind`, plus the likes and comments tables) and their flag bit.
KINDS = ("play", "watch_ms", "completed", "loop", "skip", "share", "not_interested")
_BIT = {kind: 1 << n for n, kind in enumerate((*KINDS, "like", "comment"))}
READ_KINDS = KINDS
"""The `watch_events` kinds the training reads (impressions are not)."""


@dataclass
class EventRows:
    """The raw rows, as columns: what a viewer did to a video (`kind`, `value`, `at` in ms),
    follows (follower, followee, at) and each video's owner."""

    user: list[str] = field(default_factory=list)
    video: list[str] = field(default_factory=list)
    kind: list[str] = field(default_factory=list)
    value: list[int] = field(default_factory=list)
    at: list[int] = field(default_factory=list)
    follows: list[tuple[str, str, int]] = field(default_factory=list)
    owner: dict[str, str] = field(default_factory=dict)

    def add(self, user: str, video: str, kind: str, value: int, at: int) -> None:
        self.user.append(user)
        self.video.append(video)
        self.kind.append(kind)
        self.value.append(value)
        self.at.append(at)


def weighted_log(rows: EventRows) -> Interactions:
    """One row per (viewer, video) pair with a nonzero weight (the module doc), timed at the
    pair's last event (seconds); raises ValueError when no pair has one."""
    if not rows.user:
        raise ValueError("no events to train on")
    users, user = np.unique(np.asarray(rows.user, dtype=str), return_inverse=True)
    items, item = np.unique(np.asarray(rows.video, dtype=str), return_inverse=True)
    kind_names, kind = np.unique(np.asarray(rows.kind, dtype=str), return_inverse=True)
    bits = np.asarray([_BIT.get(str(k), 0) for k in kind_names], dtype=np.int64)[kind]
    at = np.asarray(rows.at, dtype=np.int64)
    value = np.asarray(rows.value, dtype=np.int64)
    pairs, pair = np.unique(user.astype(np.int64) * len(items) + item, return_inverse=True)
    flags = np.zeros(len(pairs), dtype=np.int64)
    np.bitwise_or.at(flags, pair, bits)
    watched_ms = np.bincount(pair, np.where(bits == _BIT["watch_ms"], value, 0), len(pairs))
    last = np.full(len(pairs), np.iinfo(np.int64).min)
    np.maximum.at(last, pair, at)
    pair_user, pair_item = pairs // len(items), pairs % len(items)

    def has(name: str) -> npt.NDArray[np.bool_]:
        return (flags & _BIT[name]) != 0

    weight = (
        COMPLETED * has("completed")
        + LOOP * has("loop")
        + SHARE * has("share")
        + COMMENT * has("comment")
        + LIKE * has("like")
        + FOLLOW * _followed_from(rows, users, items, pair_user, pair_item, last)
    )
    quick = has("skip") & (watched_ms < QUICK_SKIP_MS)
    watched = (watched_ms >= QUICK_SKIP_MS) | (has("play") & ~has("skip"))
    weight = np.where(weight > 0, weight, np.where(quick, QUICK_SKIP, WATCHED * watched))
    weight = np.where(has("not_interested"), NOT_INTERESTED, weight)
    keep = weight != 0
    if not keep.any():
        raise ValueError("no event says anything about a viewer's taste")
    kept_users, new_user = np.unique(pair_user[keep], return_inverse=True)
    kept_items, new_item = np.unique(pair_item[keep], return_inverse=True)
    return Interactions(
        users[kept_users],
        items[kept_items],
        new_user.astype(np.int64),
        new_item.astype(np.int64),
        last[keep].astype(np.float64) / 1000.0,
        np.full(int(keep.sum()), np.nan),
        weight[keep].astype(np.float32),
    )


def _followed_from(
    rows: EventRows,
    users: npt.NDArray[np.str_],
    items: npt.NDArray[np.str_],
    pair_user: npt.NDArray[np.int64],
    pair_item: npt.NDArray[np.int64],
    last: npt.NDArray[np.int64],
) -> npt.NDArray[np.bool_]:
    """Which pairs a follow came from (the module doc)."""
    out = np.zeros(len(pair_user), dtype=bool)
    if not rows.follows:
        return out
    user_code = {str(u): n for n, u in enumerate(users.tolist())}
    owner_names, owner = np.unique(
        np.asarray([rows.owner.get(str(v), "") for v in items.tolist()], dtype=str),
        return_inverse=True,
    )
    owner_code = {str(o): n for n, o in enumerate(owner_names.tolist())}
    # The pairs grouped by (viewer, owner of the video).
    key = pair_user * len(owner_names) + owner[pair_item]
    order = np.argsort(key, kind="stable")
    sorted_keys = key[order]
    for follower, followee, at in rows.follows:
        viewer, creator = user_code.get(follower), owner_code.get(followee)
        if viewer is None or creator is None or not followee:
            continue
        wanted = viewer * len(owner_names) + creator
        lo = int(np.searchsorted(sorted_keys, wanted, side="left"))
        hi = int(np.searchsorted(sorted_keys, wanted, side="right"))
        if lo == hi:
            continue
        candidates = order[lo:hi]
        distance = np.abs(last[candidates] - at)
        best = int(np.argmin(distance))
        if distance[best] <= FOLLOW_WINDOW_MS:
            out[candidates[best]] = True
    return out

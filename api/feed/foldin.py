"""The For You fold-in (issue 17, "Cold start"): a viewer the model version does not know yet
(registered, or first active, since it was trained) gets a factor of their own from what they
did since, with no retrain, once they have done enough (`api.feed.personal` then builds them a
list as for a viewer the model knows, ordered by the folded iALS scores).

- **read**: the viewer's newest `NEWEST` events in one query (`watch_events` of
  `recsys.signals.READ_KINDS` and comments from their (user, time) indexes, likes from their
  primary key (user, video); with each video's owner), and their follows in a second (the
  follows table's primary key);
- **weigh**: `recsys.signals.weighted_log`, the loop's own weighting (a quick skip or
  "not interested" weighs negative, a follow from a video adds to it);
- **fold in**: the pairs on videos the model knows; with at least `FOLD_IN_MIN` positive
  ones, `RetrievalModel.fold_in` (the closed-form iALS user solve, `recsys.foldin`); fewer,
  or a version without its iALS setting: None (the snapshot, as before).

What identifies a viewer's events here is their seen-set version (`api.feed.seen`: replaced
whenever a play, completion, skip or "not interested" is recorded; read per request anyway),
as `events_key`: a folded list is built once per (snapshot, model version, events key,
followees), and a viewer found to have too few events is not read again until that key
changes (kept per process). A like or comment alone does not change the key: it counts from
the viewer's next watch event on. A failed read logs and gives None (the snapshot's order),
and is tried again on the next session.
"""

from __future__ import annotations

import asyncio
import logging
import zlib
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt
from sqlalchemy import BindParameter, Select, bindparam, literal, select, union_all

from api.core.context import AppContext
from api.core.tables import comments, follows, likes, videos, watch_events
from api.core.ttlcache import TTLCache
from recsys import artifact
from recsys.signals import READ_KINDS, EventRows, weighted_log

log = logging.getLogger("reelforge.feed")

# Positive (viewer, video) pairs on videos the model knows, before a viewer is folded in.
FOLD_IN_MIN = 3
# The newest events read per viewer.
NEWEST = 200
# Per process: (version, viewer, events key) found to have too few events.
FEW, FEW_SECONDS = 50_000, 3600.0


def _events() -> Select[Any]:
    """The viewer's newest `NEWEST` rows of each source, then the newest `NEWEST` of those, with
    each video's owner: one statement, each part from an index led by the user."""
    viewer: BindParameter[str] = bindparam("viewer")
    we = watch_events.c
    parts = [
        select(we.video_id.label("video_id"), we.kind.label("kind"), we.value, we.at)
        .where(we.user_id == viewer, we.kind.in_(READ_KINDS))
        .order_by(we.at.desc())
        .limit(NEWEST)
    ]
    for table, kind in ((likes, "like"), (comments, "comment")):
        c = table.c
        parts.append(
            select(
                c.video_id,
                literal(kind).label("kind"),
                literal(0).label("value"),
                c.created_at.label("at"),
            )
            .where(c.user_id == viewer)
            .order_by(c.created_at.desc())
            .limit(NEWEST)
        )
    # Each part's ORDER BY and LIMIT in a subquery of its own (SQLite allows them only there).
    rows = union_all(*(select(part.subquery()) for part in parts)).subquery()
    return (
        select(rows.c.video_id, rows.c.kind, rows.c.value, rows.c.at, videos.c.owner_id)
        .join(videos, videos.c.id == rows.c.video_id)
        .order_by(rows.c.at.desc())
        .limit(NEWEST)
    )


_EVENTS = _events()
_FOLLOWS = select(follows.c.followee_id, follows.c.created_at).where(
    follows.c.follower_id == bindparam("viewer")
)


def events_key(version: bytes) -> str:
    """A short name of the viewer's seen-set version (part of a folded list's tag)."""
    return f"e{zlib.crc32(version):08x}"


@dataclass(frozen=True)
class Folded:
    """A folded-in viewer: their factor, and how many (viewer, video) pairs it came from."""

    factor: npt.NDArray[np.float32]
    pairs: int
    positive: int


async def read_rows(ctx: AppContext, viewer: str) -> EventRows:
    """The viewer's newest events and their follows, as the loop's `EventRows`."""
    async with ctx.reads.connect() as conn:
        found = (await conn.execute(_EVENTS, {"viewer": viewer})).all()
        followed = (await conn.execute(_FOLLOWS, {"viewer": viewer})).all() if found else []
    rows = EventRows()
    for video, kind, value, at, owner in found:
        rows.add(viewer, str(video), str(kind), int(value or 0), int(at))
        rows.owner[str(video)] = str(owner)
    rows.follows = [(viewer, str(followee), int(at)) for followee, at in followed]
    return rows


def fold(model: artifact.RetrievalModel, rows: EventRows) -> Folded | None:
    """The viewer's factor from their rows (the module doc), or None."""
    try:
        weighted = weighted_log(rows)
    except ValueError:  # nothing that says anything about a taste
        return None
    assert weighted.weight is not None
    codes = model.codes(weighted.items[weighted.item].tolist())
    keep = codes >= 0
    weights = weighted.weight[keep]
    positive = int(np.count_nonzero(weights > 0))
    if positive < FOLD_IN_MIN:
        return None
    factor = model.fold_in(codes[keep], weights)
    return None if factor is None else Folded(factor, int(keep.sum()), positive)


class FoldIns:
    """The fold-ins of one process (`api.feed.personal.PersonalOrder` holds one)."""

    def __init__(self) -> None:
        self._few: TTLCache[tuple[str, str, str], bool] = TTLCache(FEW_SECONDS, max_items=FEW)

    def too_few(self, model: artifact.RetrievalModel, viewer: str, key: str) -> bool:
        """True when the viewer had too few events at this events key (no read needed)."""
        return self._few.get((model.version, viewer, key)) is not None

    async def factor(
        self, ctx: AppContext, model: artifact.RetrievalModel, viewer: str, key: str
    ) -> Folded | None:
        """The viewer's folded factor at events key `key`, or None (the module doc)."""
        try:
            rows = await read_rows(ctx, viewer)
        except Exception as exc:  # the snapshot's order this time; read again next session
            log.warning("fold-in events of %s not read: %r", viewer, exc)
            return None
        folded = await asyncio.to_thread(fold, model, rows)
        if folded is None:
            self._few.put((model.version, viewer, key), True)
        return folded

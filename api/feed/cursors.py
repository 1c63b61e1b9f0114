"""The feed's cursors: where a session is in the feed it pages through, tagged by source.

They go through the one cursor codec (`api.core.paging.CursorCodec`: opaque base64url of
msgspec JSON, one 400 for a cursor we did not hand out); the tag (`type`) tells which feed a
cursor pages, so a cursor of another feed is told apart from a forged one.
"""

from __future__ import annotations

import msgspec

from api.core.paging import CursorCodec


class FollowingCursor(msgspec.Struct, tag="f"):
    """The keyset `(published_at, id)` of the last video of a following page."""

    published_at: int
    id: str


class RankedCursor(msgspec.Struct, tag="r"):
    """A ranked session: its snapshot, the bitmap of what was served from it, the last
    creators (the diversity window spans pages) and the count of items served (cold-start
    slots); `personal`: the tag of the viewer's own list it pages through
    (`api.feed.personal`), None for the snapshot's order."""

    sid: str
    served: bytes
    recent: list[str]
    count: int
    personal: str | None = None


class TrendingCursor(msgspec.Struct, tag="t"):
    """The trending order's cutoff and the sort key of the last video served."""

    cutoff: int
    recent: int
    engagement: int
    id: str


Cursor = FollowingCursor | RankedCursor | TrendingCursor

FEED_CURSORS = CursorCodec[Cursor](Cursor)

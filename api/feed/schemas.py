"""What `GET /v1/feed` answers: a page of videos, the cursor of the next, and its source."""

from __future__ import annotations

from typing import Literal

import msgspec

from api.videos.schemas import VideoOut

FeedType = Literal["following", "for_you"]


class FeedOut(msgspec.Struct):
    videos: list[VideoOut]
    next_cursor: str | None
    source: Literal["following", "ranked", "trending"]
    # A ranked page of the viewer's own list (issue 17, api/feed/personal.py).
    personal: bool = False

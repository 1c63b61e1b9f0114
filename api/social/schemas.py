"""The social routes' request and response bodies (issue 3, "Social"): likes, follows,
comments and watch events."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

from api.videos.schemas import AuthorOut

MAX_EVENTS = 100
"""Events one `POST /v1/events` may carry."""

EventType = Literal[
    "impression", "play", "watch_ms", "completed", "loop", "skip", "share", "not_interested"
]


class LikeOut(msgspec.Struct):
    liked: bool
    like_count: int


class FollowOut(msgspec.Struct):
    following: bool
    follower_count: int


MAX_COMMENT = 2000


class CommentIn(msgspec.Struct):
    # Trimmed, then 1 to MAX_COMMENT characters (social/comments.py).
    body: Annotated[str, msgspec.Meta(min_length=1, max_length=MAX_COMMENT)]


class CommentOut(msgspec.Struct):
    id: str
    video_id: str
    author: AuthorOut
    body: str
    created_at: int


class CommentPage(msgspec.Struct):
    comments: list[CommentOut]
    next_cursor: str | None


class EventIn(msgspec.Struct):
    event_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    video_id: Annotated[str, msgspec.Meta(min_length=1, max_length=64)]
    type: EventType
    value: int | None = None


class EventsIn(msgspec.Struct):
    events: Annotated[list[EventIn], msgspec.Meta(max_length=MAX_EVENTS)]


class RejectedEvent(msgspec.Struct):
    event_id: str
    reason: str


class EventsOut(msgspec.Struct):
    accepted: int
    duplicates: int
    rejected: list[RejectedEvent]

"""What the accounts routes take and answer: sign-up and sign-in bodies, a session, a public
profile (`UserOut`, built from a `users` row) and a page of a creator's grid."""

from __future__ import annotations

from typing import Any

import msgspec

from api.videos.schemas import VideoOut


class RegisterIn(msgspec.Struct):
    handle: str
    password: str
    display_name: str | None = None


class LoginIn(msgspec.Struct):
    handle: str
    password: str


class UserOut(msgspec.Struct):
    id: str
    handle: str
    display_name: str
    created_at: int
    follower_count: int
    following_count: int
    video_count: int


class SessionOut(msgspec.Struct):
    user: UserOut
    token: str
    expires_at: int


class VideoPage(msgspec.Struct):
    videos: list[VideoOut]
    next_cursor: str | None


def user_out(row: Any) -> UserOut:
    m = row._mapping
    return UserOut(
        id=m["id"],
        handle=m["handle"],
        display_name=m["display_name"],
        created_at=m["created_at"],
        follower_count=m["follower_count"],
        following_count=m["following_count"],
        video_count=m["video_count"],
    )

"""What the accounts routes take and answer: sign-up and sign-in bodies, a session, a public
profile (`UserOut`, built from a `users` row) and a page of a creator's grid."""

from __future__ import annotations

from typing import Annotated, Any

import msgspec

from api.videos.schemas import VideoOut

MIN_PASSWORD = 8
# argon2 hashes whatever it is given; a cap keeps a megabyte "password" from costing more.
MAX_PASSWORD = 1024
Password = Annotated[str, msgspec.Meta(min_length=MIN_PASSWORD, max_length=MAX_PASSWORD)]
# A handle is trimmed and lower-cased, then must be 3 to 32 of [a-z0-9_.] (accounts/service.py).
Handle = Annotated[str, msgspec.Meta(min_length=3, pattern=r"^\s*[A-Za-z0-9_.]{3,32}\s*$")]


class RegisterIn(msgspec.Struct):
    handle: Handle
    password: Password
    display_name: str | None = None


class LoginIn(msgspec.Struct):
    handle: Annotated[str, msgspec.Meta(min_length=1)]
    password: Annotated[str, msgspec.Meta(min_length=1)]


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

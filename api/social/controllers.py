"""Routes: social (issue 3, "Social"): likes, follows, comments and watch events.

Thin handlers: each parses its input, calls the service (`api.social.likes`, `.follows`,
`.comments`, `.events`) and returns its schema (`api.social.schemas`). The services hold the
SQL and the rules: idempotent writes, counters that move only with the rows they count, and
404 (not 403) for a video the caller may not see, so private videos cannot be probed.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, delete, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter, RequestBody

from api.core import errors as err
from api.core.caller import AS_USER, AS_VIEWER, User, context_of
from api.core.paging import DEFAULT_LIMIT, MAX_LIMIT
from api.social import comments, events, follows, likes
from api.social.schemas import (
    CommentIn,
    CommentOut,
    CommentPage,
    EventsIn,
    EventsOut,
    FollowOut,
    LikeOut,
)

PageLimit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)]


@post(
    "/v1/videos/{video_id:str}/like",
    responses=err.documented(err.Unauthorized, err.NotFound, *err.WRITE),
    status_code=200,
    dependencies=AS_USER,
    tags=["social"],
)
async def like(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> LikeOut:
    """Like a video (idempotent): 200 `{liked: true, like_count}`."""
    count = await likes.like(context_of(request), user.id, video_id)
    return LikeOut(liked=True, like_count=count)


@delete(
    "/v1/videos/{video_id:str}/like",
    responses=err.documented(err.Unauthorized, err.NotFound, *err.WRITE),
    status_code=200,
    dependencies=AS_USER,
    tags=["social"],
)
async def unlike(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> LikeOut:
    """Take a like back (idempotent): 200 `{liked: false, like_count}`."""
    count = await likes.unlike(context_of(request), user.id, video_id)
    return LikeOut(liked=False, like_count=count)


@post(
    "/v1/users/{user_id:str}/follow",
    responses=err.documented(err.Unauthorized, err.NotFound, *err.WRITE),
    status_code=200,
    dependencies=AS_USER,
    tags=["social"],
)
async def follow(
    request: Request[Any, Any, Any], user_id: FromPath[str], user: NamedDependency[User]
) -> FollowOut:
    """Follow a creator (idempotent): 200 `{following: true, follower_count}`."""
    count = await follows.follow(context_of(request), user.id, user_id)
    return FollowOut(following=True, follower_count=count)


@delete(
    "/v1/users/{user_id:str}/follow",
    responses=err.documented(err.Unauthorized, err.NotFound, *err.WRITE),
    status_code=200,
    dependencies=AS_USER,
    tags=["social"],
)
async def unfollow(
    request: Request[Any, Any, Any], user_id: FromPath[str], user: NamedDependency[User]
) -> FollowOut:
    """Stop following (idempotent): 200 `{following: false, follower_count}`."""
    count = await follows.unfollow(context_of(request), user.id, user_id)
    return FollowOut(following=False, follower_count=count)


@post(
    "/v1/videos/{video_id:str}/comments",
    responses=err.documented(err.Unauthorized, err.NotFound, *err.WRITE),
    status_code=201,
    dependencies=AS_USER,
    tags=["social"],
)
async def add_comment(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    user: NamedDependency[User],
    data: RequestBody[CommentIn],
) -> CommentOut:
    """Comment on a video: 201 CommentOut; the video's comment_count moves with it."""
    return await comments.add_comment(context_of(request), user.id, video_id, data.body)


@get(
    "/v1/videos/{video_id:str}/comments",
    responses=err.documented(err.Unauthorized, err.NotFound),
    dependencies=AS_VIEWER,
    tags=["social"],
)
async def list_comments(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    viewer: NamedDependency[User | None],
    cursor: FromQuery[str | None] = None,
    limit: PageLimit = DEFAULT_LIMIT,
) -> CommentPage:
    """A video's comments, newest first, in cursor pages."""
    viewer_id = viewer.id if viewer else None
    return await comments.list_comments(context_of(request), video_id, viewer_id, cursor, limit)


@post(
    "/v1/events",
    responses=err.documented(err.Unauthorized, *err.WRITE),
    status_code=200,
    dependencies=AS_USER,
    tags=["social"],
)
async def post_events(
    request: Request[Any, Any, Any], user: NamedDependency[User], data: RequestBody[EventsIn]
) -> EventsOut:
    """Record a batch of watch events; each `(user, event_id)` counts once, ever.

    Events naming a video the caller cannot see, or with an out-of-range value, are listed in
    `rejected` while the rest of the batch is recorded.
    """
    return await events.record_events(context_of(request), user.id, data.events)


ROUTES: list[Any] = [
    like,
    unlike,
    follow,
    unfollow,
    add_comment,
    list_comments,
    post_events,
]

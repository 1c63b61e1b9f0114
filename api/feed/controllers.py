"""Routes: the feed, `GET /v1/feed?type=following|for_you&cursor=&limit=` (issue 3, "Feed").

`following` needs a token, `for_you` takes one if given; the pages, their sources and their
cursors are `api.feed.service`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get
from litestar.di import NamedDependency, Provide
from litestar.params import QueryParameter

from api.core import errors as err
from api.core.caller import User, context_of, optional_user
from api.core.errors import Unauthorized
from api.feed import service
from api.feed.cursors import FEED_CURSORS
from api.feed.schemas import FeedOut, FeedType


@get(
    "/v1/feed",
    responses=err.documented(err.Unauthorized),
    dependencies={"user": Provide(optional_user)},
)
async def get_feed(
    request: Request[Any, Any, Any],
    user: NamedDependency[User | None],
    feed_type: Annotated[FeedType, QueryParameter(name="type")] = "for_you",
    cursor: Annotated[str | None, QueryParameter()] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=50)] = 10,
) -> FeedOut:
    """A page of the following or the for-you feed; `source` says where the page came from."""
    ctx = context_of(request)
    decoded = FEED_CURSORS.decode(cursor) if cursor else None
    if feed_type == "for_you":
        # Both made in the app's lifespan, one per process.
        state = request.app.state
        return await service.for_you_page(
            ctx, state.feed_store, state.trending, user, decoded, limit, state.personal
        )
    if user is None:
        raise Unauthorized("the following feed needs a bearer token")
    return await service.following_page(ctx, user, decoded, limit)


ROUTES: list[Any] = [get_feed]

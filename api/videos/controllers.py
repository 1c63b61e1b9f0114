"""Routes: one video (issue 3, "Videos" and "Upload").

`POST /v1/videos/{id}/publish` → 202, `GET /v1/videos/{id}`, `GET /v1/videos/{id}/history`
(the owner's), `DELETE /v1/videos/{id}` → 204. Visibility and the moves themselves are in
`api/videos.py`.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

import msgspec
from litestar import Request, Response, delete, get, post
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.accounts.tokens import User, optional_user, require_user
from api.core.context import AppContext
from api.videos import service
from api.videos.schemas import VideoOut, video_out

MAX_CAPTION = 2200

Privacy = Literal["public", "unlisted", "private"]


class PublishIn(msgspec.Struct):
    caption: Annotated[str, msgspec.Meta(max_length=MAX_CAPTION)] = ""
    privacy: Privacy = "public"


class PublishOut(msgspec.Struct):
    video_id: str
    status: str


class HistoryEntry(msgspec.Struct):
    at: int
    from_status: str
    to_status: str
    reason: str


class HistoryOut(msgspec.Struct):
    video_id: str
    history: list[HistoryEntry]


def _ctx(request: Request[Any, Any, Any]) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


@post(
    "/v1/videos/{video_id:str}/publish",
    status_code=HTTP_202_ACCEPTED,
    dependencies={"user": Provide(require_user)},
    security=[{"BearerToken": []}],
)
async def publish_video(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    data: JSONBody[PublishIn],
    user: NamedDependency[User],
) -> PublishOut:
    """Queue an uploaded video for processing with its caption and privacy (owner only;
    everyone else gets 404). 409 when the upload is incomplete or it was already published."""
    ctx = _ctx(request)
    row = await service.owned_video(ctx, video_id, user, reveal=False)
    await service.publish(ctx, row, data.caption, data.privacy)
    return PublishOut(video_id=video_id, status="processing")


@get("/v1/videos/{video_id:str}", dependencies={"user": Provide(optional_user)})
async def get_video(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User | None]
) -> VideoOut:
    """A video: anyone's when published public or unlisted, the owner's in any state."""
    ctx = _ctx(request)
    row = await service.readable_video(ctx, video_id, user)
    out = video_out(row, ctx.settings, viewer_id=user.id if user else None)
    if user is None or user.id != row.owner_id:
        out = msgspec.structs.replace(out, status_reason="")
    return out


@get(
    "/v1/videos/{video_id:str}/history",
    dependencies={"user": Provide(require_user)},
    security=[{"BearerToken": []}],
)
async def get_history(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> HistoryOut:
    """Every lifecycle move of the owner's video, oldest first, with its reason."""
    ctx = _ctx(request)
    await service.owned_video(ctx, video_id, user, reveal=False)
    rows = await service.history(ctx, video_id)
    return HistoryOut(
        video_id=video_id,
        history=[
            HistoryEntry(at=r.at, from_status=r.from_status, to_status=r.to_status, reason=r.reason)
            for r in rows
        ],
    )


@delete(
    "/v1/videos/{video_id:str}",
    status_code=HTTP_204_NO_CONTENT,
    dependencies={"user": Provide(require_user)},
    security=[{"BearerToken": []}],
)
async def delete_video(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> Response[None]:
    """Delete the owner's video: it leaves every feed now; its objects are removed by a job."""
    ctx = _ctx(request)
    await service.owned_video(ctx, video_id, user)
    await service.delete_video(ctx, video_id, "deleted by owner")
    return Response(content=None, status_code=HTTP_204_NO_CONTENT)


ROUTES: list[Any] = [publish_video, get_video, get_history, delete_video]

"""Routes: one video (issue 3, "Videos" and "Upload").

`GET /v1/videos/{id}` (with the owner's processing progress), `GET /v1/videos/{id}/history`
(the owner's), `DELETE /v1/videos/{id}` → 204. Visibility and the moves themselves are in
`api.core.visibility` and `api.videos.service`; publishing is the upload's last step
(`api.uploads.publish`).
"""

from __future__ import annotations

from typing import Any

import msgspec
from litestar import Request, Response, delete, get
from litestar.di import NamedDependency, Provide
from litestar.params import FromPath
from litestar.status_codes import HTTP_204_NO_CONTENT

from api.core import errors as err
from api.core.caller import AS_USER, User, context_of, optional_user
from api.videos import service
from api.videos.progress import processing_of
from api.videos.schemas import VideoDetailOut, video_detail, video_out


class HistoryEntry(msgspec.Struct):
    at: int
    from_status: str
    to_status: str
    reason: str


class HistoryOut(msgspec.Struct):
    video_id: str
    history: list[HistoryEntry]


@get(
    "/v1/videos/{video_id:str}",
    responses=err.documented(err.Unauthorized, err.NotFound),
    dependencies={"user": Provide(optional_user)},
)
async def get_video(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User | None]
) -> VideoDetailOut:
    """A video: anyone's when published public or unlisted, the owner's in any state, with
    its processing progress for the owner while it is processing."""
    ctx = context_of(request)
    viewer_id = user.id if user else None
    row = await service.readable_video(ctx, video_id, user)
    out = video_out(row, ctx.settings, viewer_id=viewer_id)
    if viewer_id != row.owner_id:
        out = msgspec.structs.replace(out, status_reason="")
    return video_detail(out, await processing_of(ctx, row, viewer_id))


@get(
    "/v1/videos/{video_id:str}/history",
    responses=err.documented(err.Unauthorized, err.NotFound),
    dependencies=AS_USER,
    security=[{"BearerToken": []}],
)
async def get_history(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> HistoryOut:
    """Every lifecycle move of the owner's video, oldest first, with its reason."""
    ctx = context_of(request)
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
    responses=err.documented(
        err.Unauthorized, err.Forbidden, err.NotFound, err.Conflict, *err.WRITE, empty=204
    ),
    status_code=HTTP_204_NO_CONTENT,
    dependencies=AS_USER,
    security=[{"BearerToken": []}],
)
async def delete_video(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> Response[None]:
    """Delete the owner's video: it leaves every feed now; its objects are removed by a job."""
    ctx = context_of(request)
    await service.owned_video(ctx, video_id, user)
    await service.delete_video(ctx, video_id, "deleted by owner")
    return Response(content=None, status_code=HTTP_204_NO_CONTENT)


ROUTES: list[Any] = [get_video, get_history, delete_video]

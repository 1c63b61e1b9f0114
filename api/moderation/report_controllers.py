"""Routes: reports and appeals (issue 5, "Human review and reports"); logic in
api/moderation/reports.py.

- `POST /v1/videos/{id}/report {reason, details?}` → 201 `{video_id, reason}`: any signed-in
  viewer who can see the video except its owner (403); once per viewer (a second report is
  409); `reason` one of spam, nudity, violence, hate, copyright, other (422 otherwise).
- `POST /v1/videos/{id}/appeal {reason}` → 202 `{video_id, status: "in_review"}`: the owner of
  a rejected video, once (a second appeal is 409); others get 404.
"""

from __future__ import annotations

from typing import Any

from litestar import Request, post
from litestar.di import NamedDependency
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED

from api.core import errors as err
from api.core import lifecycle
from api.core.caller import AS_USER, BEARER, User, context_of
from api.core.errors import Unprocessable
from api.media.origin import forget_visibility
from api.moderation import reports as service
from api.moderation.schemas import (
    AppealIn,
    AppealOut,
    ReportIn,
    ReportOut,
)
from api.videos.service import owned_video


@post(
    "/v1/videos/{video_id:str}/report",
    responses=err.documented(err.Unauthorized, err.NotFound, err.Conflict, *err.WRITE),
    status_code=HTTP_201_CREATED,
    dependencies=AS_USER,
    security=BEARER,
    tags=["moderation"],
)
async def report_video(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    data: JSONBody[ReportIn],
    user: NamedDependency[User],
) -> ReportOut:
    """Report a video you can see (not your own), once."""
    done = await service.report(
        context_of(request), video_id, user, data.reason, data.details.strip()
    )
    if done.pulled:
        # Pulled into review: this process's origin stops serving it at once (others within
        # their visibility TTL).
        forget_visibility(request.app.state, video_id)
    return ReportOut(video_id=video_id, reason=data.reason)


@post(
    "/v1/videos/{video_id:str}/appeal",
    responses=err.documented(err.Unauthorized, err.NotFound, err.Conflict, *err.WRITE),
    status_code=HTTP_202_ACCEPTED,
    dependencies=AS_USER,
    security=BEARER,
    tags=["moderation"],
)
async def appeal_video(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    data: JSONBody[AppealIn],
    user: NamedDependency[User],
) -> AppealOut:
    """Appeal the rejection of your video, once: it goes back to the moderators' queue."""
    reason = data.reason.strip()
    if not reason:
        raise Unprocessable("reason: say why the rejection is wrong")
    ctx = context_of(request)
    row = await owned_video(ctx, video_id, user, reveal=False)
    await service.appeal(ctx, row, user, reason)
    # In review now: this process's origin serves it to moderators' review URLs at once.
    forget_visibility(request.app.state, video_id)
    return AppealOut(video_id=video_id, status=lifecycle.IN_REVIEW)


ROUTES: list[Any] = [report_video, appeal_video]

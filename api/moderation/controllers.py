"""Routes: human review (issue 5, "Human review and reports"), moderators only.

- `GET /v1/moderation/queue?cursor=&limit=` → `{videos: [QueueItemOut], next_cursor}`: the
  in_review videos, oldest in review first, each with `hls_url`, `dash_url` and `poster_url`
  signed for the calling moderator (a review token, api/media/playback.py `review_prefix`: the
  origin serves a video in review under it only, to that moderator, for
  `review_token_ttl_seconds`); null when the video has no stored outputs.
- `POST /v1/moderation/{video_id}/decision {decision: approve|reject, reason, add_to_blocklist}`
  → `{video_id, status, decision_id, at, blocklisted_hashes}`.
- `GET /v1/moderation/{video_id}/decisions` → `{video_id, decisions: [DecisionOut]}`.
- `GET /v1/moderation/{video_id}/frames/{n}.jpg` → a worst-frame JPEG (`Cache-Control:
  private`: moderator-only content never lands in a shared cache).

Every route answers 401 without a token and 403 to a caller who is not a moderator. The
logic lives in api/moderation/.
"""

from __future__ import annotations

import re
from typing import Annotated, Any

import msgspec
from litestar import Request, Response, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, JSONBody, QueryParameter

from api.core import errors as err
from api.core.caller import AS_MODERATOR, BEARER, User, context_of
from api.core.errors import NotFound
from api.core.paging import DEFAULT_LIMIT, MAX_LIMIT
from api.core.settings import Settings
from api.media.origin import forget_visibility
from api.media.playback import review_prefix
from api.moderation import decisions, frames, queue
from api.moderation.schemas import (
    DecisionIn,
    DecisionOut,
    DecisionResultOut,
    DecisionsOut,
    FrameOut,
    ModeratorOut,
    QueueAppealOut,
    QueueItemOut,
    QueueOut,
    SafetyOut,
    WhyOut,
)
from api.videos.schemas import AuthorOut

FRAME_NAME = re.compile(r"^(\d{1,4})\.jpg$")

PageLimit = Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)]


def _json(raw: str | None) -> Any:
    try:
        return msgspec.json.decode(raw or "null")
    except msgspec.DecodeError:
        return raw


def _safety_out(entry: queue.QueueEntry, frame_url: str) -> SafetyOut | None:
    row = entry.safety
    if row is None:
        return None
    shown = [
        FrameOut(n=n, url=f"{frame_url}/{n}.jpg", time_s=f.time_s, label=f.label, score=f.score)
        for n, f in enumerate(entry.frames)
    ]
    m = row._mapping
    return SafetyOut(
        decision=m.get("decision"),
        reason=m.get("reason"),
        scores=_json(m.get("scores")),
        frames=shown,
    )


def _item_out(entry: queue.QueueEntry, settings: Settings, moderator_id: str) -> QueueItemOut:
    v = entry.video
    appeal = entry.appeal
    base = review_prefix(settings, v.id, v.render_id, moderator_id) if v.render_id else None
    return QueueItemOut(
        video_id=v.id,
        caption=v.caption,
        privacy=v.privacy,
        author=AuthorOut(id=v.owner_id, handle=v.author_handle, display_name=v.author_display_name),
        created_at=v.created_at,
        in_review_since=v.updated_at,
        why=WhyOut(source=entry.source, reason=entry.reason, checks=entry.checks),
        report_count=v.report_count,
        reports=entry.reports,
        appeal=QueueAppealOut(reason=appeal.reason, at=appeal.at) if appeal is not None else None,
        safety=_safety_out(entry, f"{settings.public_url}/v1/moderation/{v.id}/frames"),
        hls_url=f"{base}/master.m3u8" if base else None,
        dash_url=f"{base}/manifest.mpd" if base else None,
        poster_url=f"{base}/poster.jpg" if base else None,
    )


@get(
    "/v1/moderation/queue",
    responses=err.documented(err.Unauthorized, err.Forbidden),
    dependencies=AS_MODERATOR,
    security=BEARER,
    tags=["moderation"],
)
async def review_queue(
    request: Request[Any, Any, Any],
    moderator: NamedDependency[User],
    cursor: FromQuery[str | None] = None,
    limit: FromQuery[PageLimit] = DEFAULT_LIMIT,
) -> QueueOut:
    """The videos waiting for review, oldest in review first, with what flagged them and
    media URLs the calling moderator's player can open."""
    ctx = context_of(request)
    entries, next_cursor = await queue.queue_page(ctx, cursor, limit)
    return QueueOut(
        videos=[_item_out(e, ctx.settings, moderator.id) for e in entries],
        next_cursor=next_cursor,
    )


@post(
    "/v1/moderation/{video_id:str}/decision",
    responses=err.documented(
        err.Unauthorized, err.Forbidden, err.NotFound, err.Conflict, *err.WRITE
    ),
    status_code=200,
    dependencies=AS_MODERATOR,
    security=BEARER,
    tags=["moderation"],
)
async def decide(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    data: JSONBody[DecisionIn],
    moderator: NamedDependency[User],
) -> DecisionResultOut:
    """Approve (→ published) or reject (→ rejected, the reason goes to the owner) a video in
    review; 409 when it is not in review, 404 when it does not exist."""
    result = await decisions.decide(
        context_of(request),
        video_id,
        moderator.id,
        data.decision,
        data.reason,
        data.add_to_blocklist,
    )
    # This process's origin applies the new status at once (others within their cache TTL).
    forget_visibility(request.app.state, video_id)
    return DecisionResultOut(
        video_id=result.video_id,
        status=result.status,
        decision_id=result.decision_id,
        at=result.at,
        blocklisted_hashes=result.blocklisted_hashes,
    )


@get(
    "/v1/moderation/{video_id:str}/decisions",
    responses=err.documented(err.Unauthorized, err.Forbidden, err.NotFound),
    dependencies=AS_MODERATOR,
    security=BEARER,
    tags=["moderation"],
)
async def list_decisions(
    request: Request[Any, Any, Any], video_id: FromPath[str], moderator: NamedDependency[User]
) -> DecisionsOut:
    """Every decision on the video, oldest first: who, when, why."""
    rows = await decisions.decision_history(context_of(request), video_id)
    return DecisionsOut(
        video_id=video_id,
        decisions=[
            DecisionOut(
                id=r.id,
                decision=r.decision,
                reason=r.reason,
                added_to_blocklist=bool(r.added_to_blocklist),
                moderator=ModeratorOut(id=r.moderator_id, handle=r.moderator_handle),
                at=r.at,
            )
            for r in rows
        ],
    )


@get(
    "/v1/moderation/{video_id:str}/frames/{name:str}",
    responses=err.documented(err.Unauthorized, err.Forbidden, err.NotFound, err.StorageError),
    dependencies=AS_MODERATOR,
    security=BEARER,
    tags=["moderation"],
)
async def worst_frame(
    request: Request[Any, Any, Any],
    video_id: FromPath[str],
    name: FromPath[str],
    moderator: NamedDependency[User],
) -> Response[bytes]:
    """Worst frame `{n}.jpg` of the video's automated checks; 404 when there is none."""
    match = FRAME_NAME.match(name)
    if match is None:
        raise NotFound("no such frame")
    data = await frames.read_frame(context_of(request), video_id, int(match.group(1)))
    return Response(
        content=data,
        media_type="image/jpeg",
        headers={"Cache-Control": "private, max-age=300"},
    )


ROUTES: list[Any] = [review_queue, decide, list_decisions, worst_frame]

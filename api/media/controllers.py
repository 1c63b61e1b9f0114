"""The origin's route: published media served from storage (issue 3, "Origin serving";
issue 4, "Signed playback" and "Origin hardening"), and videos in review to moderators
(issue 5).

`GET|HEAD|OPTIONS /media/{video_id}/{render_id}/{path}`. Who may get what, and the one 404 and
one 403, are `api.media.origin`'s. HTTP semantics (ETag/304, Range/206/416, Cache-Control,
CORS) come from `cdn.origin.plan_response` (RFC 9110); the bytes are streamed from
`Storage.open_range`.

Responses to token-carrying URLs are `Cache-Control: private, ...` (shared caches must not
keep them; browsers keep `immutable`); public media keep `public, max-age=31536000, immutable`
under plain URLs, so an edge's shared cache key is the plain path.

With S3 storage the objects are private in the bucket and read with the API's credentials;
with `s3_redirect_private`, token-checked GETs that would send a body are answered instead
with a 307 to a presigned GET valid for `PRESIGNED_GET_TTL` (60 s); HEAD, 304, 412 and 416
are still answered here.
"""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path
from typing import Annotated, Any

from litestar import Request, Response, route
from litestar.enums import HttpMethod, MediaType
from litestar.openapi.datastructures import ResponseSpec
from litestar.params import Parameter
from litestar.response import Stream

from api.core import errors as err
from api.core.caller import context_of
from api.media import origin
from cdn.origin import cors_headers, cors_preflight_headers, plan_response
from cdn.signing import split_token

PRESIGNED_GET_TTL = timedelta(seconds=60)


def private_cache_control(headers: dict[str, str]) -> dict[str, str]:
    """`headers` with a `public` Cache-Control made `private` (RFC 9111 §5.2.2.7), the rest
    of the directives (max-age, immutable) kept for the browser's own cache."""
    value = headers.get("Cache-Control")
    if value is None or not value.startswith("public"):
        return headers
    return {**headers, "Cache-Control": "private" + value.removeprefix("public")}


MEDIA_PATH = "/media/{video_id:str}/{render_id:str}/{path:path}"


def _no_body(why: str) -> ResponseSpec:
    return ResponseSpec(data_container=None, description=why)


MEDIA_ANSWERS: dict[int, ResponseSpec] = {
    **err.documented(err.Forbidden, err.NotFound, err.StorageError),
    # Any media type: a manifest, a segment, a poster, a storyboard, a download.
    200: ResponseSpec(
        data_container=bytes, media_type="*/*", generate_examples=False, description="The object"
    ),
    206: ResponseSpec(
        data_container=bytes,
        media_type="*/*",
        generate_examples=False,
        description="One range of it (RFC 9110 §14.4)",
    ),
    304: _no_body("Not modified (RFC 9110 §15.4.5)"),
    307: _no_body("A presigned GET of private media (RFC 9110 §15.4.8)"),
    412: _no_body("A precondition failed (RFC 9110 §15.5.13)"),
    416: _no_body("Range not satisfiable (RFC 9110 §15.5.17)"),
}
"""What the origin answers (cdn/origin.py `plan_response`): the object or one range of it,
the conditional and range answers without a body, the one 404."""

MediaPath = Annotated[
    Path,
    # Documented as what it is, a path under the render ("v720/init.mp4"), not Litestar's
    # default for a path parameter (an absolute URI, which no media path is). Handlers
    # declare it for the document and read `request.path_params`, as sent.
    Parameter(description="A file of the render, e.g. master.m3u8", schema_extra={"format": None}),
]


@route(
    MEDIA_PATH,
    http_method=[HttpMethod.OPTIONS],
    status_code=204,
    responses={**err.documented(), 204: _no_body("A CORS preflight answer")},
    tags=["media"],
)
async def media_preflight(request: Request[Any, Any, Any], path: MediaPath) -> Response[None]:
    """A CORS preflight (Fetch standard §3.2.3) answers the same for any media path."""
    answer: Response[Any] = Response(
        content=b"", status_code=204, headers=cors_preflight_headers(request.headers)
    )
    return answer


@route(
    MEDIA_PATH,
    responses=MEDIA_ANSWERS,
    http_method=[HttpMethod.GET, HttpMethod.HEAD],
    summary="Published media (HLS/DASH manifests, segments, posters, storyboards, download.mp4)",
    tags=["media"],
)
async def serve_media(request: Request[Any, Any, Any], path: MediaPath) -> Response[Any]:
    ctx = context_of(request)
    params = request.path_params
    video_id, render_id = params["video_id"], params["render_id"]
    # Litestar's path parameters keep their leading '/'.
    token, name = split_token(params["path"].removeprefix("/"))
    raw_path = request.scope.get("raw_path") or request.scope["path"].encode()
    plain = origin.as_sent(raw_path, video_id, render_id, params["path"])
    key = origin.object_key(video_id, render_id, name) if plain else None
    if key is None:
        raise origin.not_found()
    signed = await origin.check_request(request.app.state, ctx, video_id, render_id, token)
    info = await origin.stat(ctx, key)
    plan = plan_response(request.method, dict(request.headers), info)
    headers = private_cache_control(plan.headers) if signed else plan.headers
    media_type = headers.get("Content-Type", MediaType.TEXT)
    if plan.body is None:
        return Response(
            content=b"", status_code=plan.status, headers=headers, media_type=media_type
        )
    if signed and ctx.settings.s3_redirect_private:
        location = await asyncio.to_thread(ctx.storage.presigned_get, key, PRESIGNED_GET_TTL)
        if location is not None:  # None: local storage, streamed below
            return _redirect(location)
    chunks = await origin.open_range(ctx, key, plan.body.start, plan.body.end)
    return Stream(content=chunks, status_code=plan.status, headers=headers, media_type=media_type)


def _redirect(location: str) -> Response[Any]:
    """307 (RFC 9110 §15.4.8: same method, same Range) to a presigned GET; never cached,
    as the URL it names expires within a minute."""
    headers = {**cors_headers(), "Location": location, "Cache-Control": "no-store"}
    return Response(content=b"", status_code=307, headers=headers)


ROUTES: list[Any] = [media_preflight, serve_media]

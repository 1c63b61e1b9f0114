"""Routes: getting a file in (issue 3, "Upload").

- `POST /v1/videos/upload-url` → 201 `{video_id, upload_url, method, headers, expires_at}`:
  a presigned PUT to object storage, or (local storage) the API's own signed
  `PUT /v1/uploads/{id}?expires=&signature=`;
- `PUT /v1/videos/{id}/file`: the owner streams the file through the API (both modes);
- tus 1.0 (core + creation + termination) at `/v1/uploads/tus` for flaky mobile networks.

Bodies are streamed to storage, never held in memory (api/uploads/body.py); these routes
alone lift the app's request size limit. The request becomes an `IncomingBody` here, so the
upload services never see the web framework.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncGenerator, Awaitable
from typing import Any

from litestar import Request, Response, delete, head, patch, post, put, route
from litestar.di import NamedDependency
from litestar.enums import HttpMethod, MediaType
from litestar.exceptions import HTTPException
from litestar.params import FromPath, JSONBody
from litestar.status_codes import HTTP_201_CREATED, HTTP_202_ACCEPTED, HTTP_204_NO_CONTENT

from api.core import errors as err
from api.core import lifecycle
from api.core.caller import AS_USER, User, context_of, require_user
from api.core.context import AppContext
from api.core.errors import BodyInterrupted, Conflict, NotFound, UnsupportedMediaType
from api.uploads import declare, tus
from api.uploads.body import IncomingBody, upload_limiter
from api.uploads.openapi import tus_operation
from api.uploads.parts import append_part, receive_whole_file, terminate
from api.uploads.publish import publish
from api.uploads.schemas import PublishIn, PublishOut, UploadedOut, UploadUrlIn, UploadUrlOut
from api.videos.service import load_video, owned_video

TUS_PATH = "/v1/uploads/tus"


def _incoming(request: Request[Any, Any, Any]) -> IncomingBody:
    return IncomingBody(
        chunks=_chunks(request),
        content_type=request.headers.get("content-type"),
        content_length=request.headers.get("content-length"),
        limiter=upload_limiter(request.app.state),
    )


async def _chunks(request: Request[Any, Any, Any]) -> AsyncGenerator[bytes, None]:
    async with contextlib.aclosing(request.stream()) as stream:
        try:
            async for chunk in stream:
                yield chunk
        except HTTPException as exc:  # litestar's "client disconnected prematurely"
            raise BodyInterrupted(str(exc.detail)) from exc


# ----------------------------------------------------------- one-shot uploads


@post(
    "/v1/videos/upload-url",
    responses=err.documented(err.Unauthorized, err.UnsupportedMediaType, *err.WRITE),
    status_code=HTTP_201_CREATED,
    dependencies=AS_USER,
    security=[{"BearerToken": []}],
)
async def create_upload_url(
    request: Request[Any, Any, Any], data: JSONBody[UploadUrlIn], user: NamedDependency[User]
) -> UploadUrlOut:
    """Declare a file and get where to PUT it: 413 over the size limit, 422 for an empty
    file, 415 for a media type not accepted. The video starts `awaiting_upload`."""
    ctx = context_of(request)
    media_type = declare.check_declared(ctx.settings, data.file_size_bytes, data.content_type)
    upload = await declare.create_upload(
        ctx,
        user.id,
        kind=declare.PRESIGNED,
        size=data.file_size_bytes,
        content_type=media_type,
        ttl_ms=ctx.settings.upload_url_ttl_seconds * 1000,
    )
    url = await asyncio.to_thread(
        declare.storage_upload_url, ctx, upload.video_id, upload.expires_at, media_type
    )
    return UploadUrlOut(
        video_id=upload.video_id,
        upload_url=url,
        method="PUT",
        headers={"Content-Type": media_type},
        expires_at=upload.expires_at,
    )


@put(
    "/v1/uploads/{video_id:str}",
    responses=err.documented(
        err.Forbidden,
        err.NotFound,
        err.Conflict,
        err.UnsupportedMediaType,
        err.StorageError,
        *err.WRITE,
    ),
    request_max_body_size=None,
    include_in_schema=True,
)
async def put_signed_upload(
    request: Request[Any, Any, Any], video_id: FromPath[str]
) -> UploadedOut:
    """The signed upload URL of local storage: no token, the signature is the credential
    (403 when tampered with or expired). Exactly the declared size, else nothing is kept."""
    ctx = context_of(request)
    declare.verify_signature(
        ctx.settings,
        video_id,
        request.query_params.get("expires"),
        request.query_params.get("signature"),
    )
    row = await load_video(ctx, video_id)
    if row is None or row.status == lifecycle.DELETED:
        raise NotFound("no such video")
    _check_awaiting(row)
    size = await receive_whole_file(ctx, row, _incoming(request), kind=declare.PRESIGNED)
    return UploadedOut(video_id=video_id, status=lifecycle.UPLOADED, size=size)


@put(
    "/v1/videos/{video_id:str}/file",
    responses=err.documented(
        err.Unauthorized,
        err.Forbidden,  # a video the caller can see but does not own (owned_video)
        err.NotFound,
        err.Conflict,
        err.UnsupportedMediaType,
        err.StorageError,
        *err.WRITE,
    ),
    request_max_body_size=None,
    dependencies=AS_USER,
    security=[{"BearerToken": []}],
)
async def put_direct_upload(
    request: Request[Any, Any, Any], video_id: FromPath[str], user: NamedDependency[User]
) -> UploadedOut:
    """The owner streams the whole file through the API (into object storage in
    production). Exactly the declared size, else nothing is kept."""
    ctx = context_of(request)
    row = await owned_video(ctx, video_id, user)
    _check_awaiting(row)
    if row.upload_kind == declare.TUS:
        raise Conflict("this is a tus upload: continue it at its tus URL")
    size = await receive_whole_file(ctx, row, _incoming(request), kind=declare.DIRECT)
    return UploadedOut(video_id=video_id, status=lifecycle.UPLOADED, size=size)


def _check_awaiting(row: Any) -> None:
    if row.status != lifecycle.AWAITING_UPLOAD:
        raise Conflict(f"the video is {row.status}: its file was already received")


# ------------------------------------------------------------------------ tus


async def _tus(work: Awaitable[Response[Any]]) -> Response[Any]:
    """Run a tus handler so that its errors carry `Tus-Resumable` too (answered as any
    other route's by api/core/errors.py)."""
    try:
        return await work
    except Exception as exc:
        tus.with_tus_headers(exc)
        raise


async def _tus_video(request: Request[Any, Any, Any], video_id: str) -> tuple[AppContext, Any]:
    """Caller, version check, and the caller's own tus upload (404 for anyone else's).
    Without a valid token the answer is 401 whatever the version (issue 16, item 6)."""
    ctx = context_of(request)
    user = await require_user(request)
    tus.check_resumable(request.headers)
    row = await owned_video(ctx, video_id, user, reveal=False)
    if row.upload_kind != declare.TUS:
        raise NotFound("no such tus upload")
    return ctx, row


@route(
    [TUS_PATH, TUS_PATH + "/{video_id:str}"],
    http_method=[HttpMethod.OPTIONS],
    status_code=HTTP_204_NO_CONTENT,
    include_in_schema=False,
)
async def tus_options(request: Request[Any, Any, Any]) -> Response[None]:
    """Core §OPTIONS: what this server supports; no version check, no token."""
    headers = tus.options_headers(context_of(request).settings.max_upload_bytes)
    return _empty(HTTP_204_NO_CONTENT, headers)


@post(
    TUS_PATH,
    responses=err.documented(
        err.PreconditionFailed, err.Unauthorized, err.UnsupportedMediaType, *err.WRITE, empty=201
    ),
    operation_class=tus_operation(
        201, required=("Upload-Length",), optional=("Upload-Metadata",), answers=("Location",)
    ),
    status_code=HTTP_201_CREATED,
    security=[{"BearerToken": []}],
)
async def tus_create(request: Request[Any, Any, Any]) -> Response[Any]:
    """Creation §POST: `Upload-Length` and `Upload-Metadata` (`filetype`, `filename`) in,
    201 with the upload's absolute URL in `Location`; the video starts `awaiting_upload`."""
    return await _tus(_create(request))


async def _create(request: Request[Any, Any, Any]) -> Response[Any]:
    ctx = context_of(request)
    user = await require_user(request)
    tus.check_resumable(request.headers)
    length = tus.parse_length(request.headers.get("upload-length"))
    raw_metadata = request.headers.get("upload-metadata", "")
    metadata = tus.parse_metadata(raw_metadata)
    media_type = declare.check_declared(ctx.settings, length, tus.declared_content_type(metadata))
    upload = await declare.create_upload(
        ctx,
        user.id,
        kind=declare.TUS,
        size=length,
        content_type=media_type,
        ttl_ms=declare.TUS_UPLOAD_TTL_MS,
        metadata=raw_metadata,
    )
    headers = {
        **tus.base_headers(),
        "Location": f"{ctx.settings.public_url}{TUS_PATH}/{upload.video_id}",
    }
    return _empty(HTTP_201_CREATED, headers)


@head(
    TUS_PATH + "/{video_id:str}",
    responses=err.documented(err.PreconditionFailed, err.Unauthorized, err.NotFound, empty=200),
    operation_class=tus_operation(
        200, answers=("Upload-Offset", "Upload-Length", "Upload-Metadata")
    ),
    security=[{"BearerToken": []}],
)
async def tus_offset(request: Request[Any, Any, Any], video_id: FromPath[str]) -> Response[None]:
    """Core §HEAD: how much the server has (`Upload-Offset`), never cached."""
    return await _tus(_offset(request, video_id))


async def _offset(request: Request[Any, Any, Any], video_id: str) -> Response[Any]:
    _, row = await _tus_video(request, video_id)
    headers = {
        **tus.base_headers(),
        "Upload-Offset": str(row.upload_offset),
        "Upload-Length": str(row.upload_size),
        "Cache-Control": "no-store",
    }
    if row.upload_metadata:
        headers["Upload-Metadata"] = row.upload_metadata
    return _empty(200, headers)


@patch(
    TUS_PATH + "/{video_id:str}",
    responses=err.documented(
        err.PreconditionFailed,
        err.Unauthorized,
        err.NotFound,
        err.Conflict,
        err.UnsupportedMediaType,
        err.StorageError,
        *err.WRITE,
        empty=204,
    ),
    operation_class=tus_operation(
        204, required=("Upload-Offset",), answers=("Upload-Offset",), chunk=True
    ),
    status_code=HTTP_204_NO_CONTENT,
    request_max_body_size=None,
    security=[{"BearerToken": []}],
)
async def tus_append(request: Request[Any, Any, Any], video_id: FromPath[str]) -> Response[None]:
    """Core §PATCH: append the body at `Upload-Offset` (409 unless it is the server's
    offset, 415 without `application/offset+octet-stream`, 413 past `Upload-Length`).
    The chunk is one part, kept whole or not at all; 204 with the new offset."""
    return await _tus(_append(request, video_id))


async def _append(request: Request[Any, Any, Any], video_id: str) -> Response[Any]:
    ctx, row = await _tus_video(request, video_id)
    content_type = declare.normalize_content_type(request.headers.get("content-type", ""))
    if content_type != tus.OFFSET_CONTENT_TYPE:
        raise UnsupportedMediaType(f"PATCH needs Content-Type: {tus.OFFSET_CONTENT_TYPE}")
    offset = tus.parse_offset(request.headers.get("upload-offset"))
    return _offset_response(await append_part(ctx, row, offset, _incoming(request)))


def _empty(status: int, headers: dict[str, str]) -> Response[Any]:
    """A tus answer: headers only (`null` is not an empty body)."""
    return Response(content=b"", status_code=status, headers=headers, media_type=MediaType.TEXT)


def _offset_response(offset: int) -> Response[Any]:
    headers = {**tus.base_headers(), "Upload-Offset": str(offset)}
    return _empty(HTTP_204_NO_CONTENT, headers)


@delete(
    TUS_PATH + "/{video_id:str}",
    responses=err.documented(
        err.PreconditionFailed,
        err.Unauthorized,
        err.NotFound,
        err.StorageError,
        *err.WRITE,
        empty=204,
    ),
    operation_class=tus_operation(204),
    status_code=HTTP_204_NO_CONTENT,
    security=[{"BearerToken": []}],
)
async def tus_terminate(request: Request[Any, Any, Any], video_id: FromPath[str]) -> Response[None]:
    """Termination §DELETE: the upload's parts are removed and the video is deleted."""
    return await _tus(_terminate(request, video_id))


async def _terminate(request: Request[Any, Any, Any], video_id: str) -> Response[Any]:
    ctx, _ = await _tus_video(request, video_id)
    await terminate(ctx, video_id)
    return _empty(HTTP_204_NO_CONTENT, tus.base_headers())


@post(
    "/v1/videos/{video_id:str}/publish",
    responses=err.documented(err.Unauthorized, err.NotFound, err.Conflict, *err.WRITE),
    status_code=HTTP_202_ACCEPTED,
    dependencies=AS_USER,
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
    ctx = context_of(request)
    row = await owned_video(ctx, video_id, user, reveal=False)
    await publish(ctx, row, data.caption, data.privacy)
    return PublishOut(video_id=video_id, status="processing")


ROUTES: list[Any] = [
    publish_video,
    create_upload_url,
    put_signed_upload,
    put_direct_upload,
    tus_options,
    tus_create,
    tus_offset,
    tus_append,
    tus_terminate,
]

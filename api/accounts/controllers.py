"""Routes: accounts (issue 3, "Accounts").

`POST /v1/auth/register`, `POST /v1/auth/login`, `POST /v1/auth/logout`, `GET /v1/users/{id}`
and `GET /v1/users/{id}/videos` (the creator's grid, newest first, cursor pages). The rules
(handles, password hashing, the grid's visibility) are `api.accounts.service`'s.
"""

from __future__ import annotations

from typing import Annotated, Any

from litestar import Request, get, post
from litestar.di import NamedDependency
from litestar.params import FromPath, FromQuery, QueryParameter, RequestBody

from api.accounts import service
from api.accounts.schemas import LoginIn, RegisterIn, SessionOut, UserOut, VideoPage, user_out
from api.core import errors as err
from api.core.caller import AS_USER, AS_VIEWER, User, bearer_token, context_of
from api.core.paging import DEFAULT_LIMIT, MAX_LIMIT


@post(
    "/v1/auth/register",
    responses=err.documented(err.Conflict, *err.WRITE),
    status_code=201,
    tags=["accounts"],
)
async def register(request: Request[Any, Any, Any], data: RequestBody[RegisterIn]) -> SessionOut:
    """Create an account and sign it in: 201 `{user, token, expires_at}`; 409 if the handle
    is taken, 422 for a malformed handle or a short password."""
    return await service.register(
        context_of(request), data.handle, data.password, data.display_name
    )


@post(
    "/v1/auth/login",
    responses=err.documented(err.Unauthorized, *err.WRITE),
    status_code=200,
    tags=["accounts"],
)
async def login(request: Request[Any, Any, Any], data: RequestBody[LoginIn]) -> SessionOut:
    """Exchange a handle and password for a new token: 200 `{user, token, expires_at}`."""
    return await service.login(context_of(request), data.handle, data.password)


@post(
    "/v1/auth/logout",
    responses=err.documented(err.Unauthorized, *err.WRITE, empty=204),
    status_code=204,
    dependencies=AS_USER,
    tags=["accounts"],
)
async def logout(request: Request[Any, Any, Any], user: NamedDependency[User]) -> None:
    """Revoke the token this request presents (other sessions stay signed in)."""
    # The guard (AS_USER) accepted this very token, so there is one.
    token = bearer_token(request.scope) or ""
    await service.logout(context_of(request), user, token)


@get(
    "/v1/users/{user_id:str}",
    responses=err.documented(err.Unauthorized, err.NotFound),
    tags=["accounts"],
)
async def get_user(request: Request[Any, Any, Any], user_id: FromPath[str]) -> UserOut:
    """A public profile with its follower/following/video counters (404 if unknown)."""
    return user_out(await service.load_user(context_of(request), user_id))


@get(
    "/v1/users/{user_id:str}/videos",
    responses=err.documented(err.Unauthorized, err.NotFound),
    dependencies=AS_VIEWER,
    tags=["accounts"],
)
async def user_videos(
    request: Request[Any, Any, Any],
    user_id: FromPath[str],
    viewer: NamedDependency[User | None],
    cursor: FromQuery[str | None] = None,
    limit: Annotated[int, QueryParameter(ge=1, le=MAX_LIMIT)] = DEFAULT_LIMIT,
) -> VideoPage:
    """The creator's grid, newest first (`created_at`, then id), in cursor pages.

    Others see published public videos only; the owner also sees their unlisted, private and
    not yet published videos (never deleted ones).
    """
    return await service.user_videos(context_of(request), user_id, viewer, cursor, limit)


ROUTES: list[Any] = [register, login, logout, get_user, user_videos]

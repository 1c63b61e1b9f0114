"""Hostile text at the door (issue 16, item 1): a NUL character anywhere in the request's
text, and JSON nested deeper than the decoder goes, are the client's error, never a 500.

- `InputGuardMiddleware` (outermost): a NUL in the percent-decoded path names nothing, the
  same 404 as any unknown path (the origin's one 404 included); a NUL in the query string
  (`%00`, RFC 3986 §2.1) is a 422 (`NulCharacter`).
- `ApiRequest` (the app's request class): the one place request bodies are decoded as JSON
  (every `data:` parameter goes through `Request.json`). A NUL escape in the body is a 422
  (`api.core.nul.json_holds_nul`); a body nested so deeply that msgspec's decoder reaches
  Python's recursion limit is a 400 (`NestedTooDeep`) instead of a `RecursionError`.
Their answers are `api/core/errors.py`'s, as for every other error.
"""

from __future__ import annotations

from typing import Any

from litestar import Request
from litestar.enums import ScopeType
from litestar.middleware import ASGIMiddleware
from litestar.types import ASGIApp, Receive, Scope, Send

from api.core.errors import NestedTooDeep, NotFound, NulCharacter
from api.core.nul import json_holds_nul, url_holds_nul


class InputGuardMiddleware(ASGIMiddleware):
    """Refuse a NUL in the path (404) or in the query string (422) before anything runs."""

    scopes = (ScopeType.HTTP,)

    async def handle(self, scope: Scope, receive: Receive, send: Send, next_app: ASGIApp) -> None:
        in_path, in_query = url_holds_nul(scope.get("path", ""), scope.get("query_string", b""))
        if in_path:
            raise NotFound("not found")
        if in_query:
            raise NulCharacter("the query string")
        await next_app(scope, receive, send)


class ApiRequest(Request[Any, Any, Any]):
    """Litestar's request, its JSON body refused when it holds a NUL or nests too deeply."""

    async def json(self) -> Any:
        if json_holds_nul(await self.body()):
            raise NulCharacter("the request body")
        try:
            return await super().json()
        except RecursionError:
            raise NestedTooDeep() from None

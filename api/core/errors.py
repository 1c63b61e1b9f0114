"""The one place where errors become HTTP responses (litestar-fullstack's exception mapper).

Every error the API returns has the shape `{"error": {"code": ..., "message": ...}}`.
`ERROR_TABLE` maps each error class to its answer: the status, the code and, for an error
whose own text is not meant for clients, a fixed message. It holds
- the domain errors of `api/core/domain_errors.py`, which services raise without knowing any
  of this (they are re-exported here: controllers and middleware import them from here);
- the errors of lower layers that reach a handler uncaught: the state machine's
  `TransitionError` (409: the video moved meanwhile), the object store's `ObjectNotFound`
  (404) and `StorageError` (503, "storage_unavailable");
- the framework's `ValidationException` (422; 400 for a body that is not JSON) and the
  catch-all `Exception` (500, logged).
A class's answer is that of the first class of its MRO in the table, so the most specific
entry wins (`BodyTooLarge` before `PayloadTooLarge`, `ObjectNotFound` before `StorageError`).
The framework's other `HTTPException`s (unknown route, wrong method) carry their own status;
`HTTP_CODES` names the code for it.

An error's `headers` (`domain_errors.with_headers`) go on its answer.

The OpenAPI document says the same (issue 16, item 6): a route declares the errors it can
raise, `responses=documented(Unauthorized, NotFound, ...)`, and each becomes the documented
answer of its status, with the body every error has (`ErrorOut`) and the codes it may carry.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgspec
from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.openapi.datastructures import ResponseSpec

from api.core.domain_errors import (
    BadRequest,
    BodyIncomplete,
    BodyInterrupted,
    BodyTooLarge,
    Conflict,
    DomainError,
    Forbidden,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NestedTooDeep,
    NotFound,
    NulCharacter,
    PayloadTooLarge,
    PreconditionFailed,
    ServiceUnavailable,
    TooManyRequests,
    Unauthorized,
    Unprocessable,
    UnsupportedMediaType,
    with_headers,
)
from api.core.lifecycle import TransitionError
from cdn.storage import ObjectNotFound, StorageError

__all__ = [
    "ANY_ROUTE",
    "ERROR_TABLE",
    "EXCEPTION_HANDLERS",
    "HTTP_CODES",
    "WRITE",
    "Answer",
    "BadRequest",
    "BodyIncomplete",
    "BodyInterrupted",
    "BodyTooLarge",
    "Conflict",
    "DomainError",
    "ErrorDetail",
    "ErrorOut",
    "Forbidden",
    "IdempotencyKeyInUse",
    "IdempotencyKeyReused",
    "NestedTooDeep",
    "NotFound",
    "NulCharacter",
    "PayloadTooLarge",
    "PreconditionFailed",
    "ServiceUnavailable",
    "StorageError",
    "TooManyRequests",
    "Unauthorized",
    "Unprocessable",
    "UnsupportedMediaType",
    "answer_for",
    "documented",
    "error_body",
    "error_response",
    "with_headers",
]


class Answer(NamedTuple):
    status: int
    code: str
    message: str | None = None
    """Said instead of the error's own text, which is not for clients; None: the error's."""


ERROR_TABLE: dict[type[Exception], Answer] = {
    # the families of domain errors (a bare DomainError is a bad request)
    DomainError: Answer(400, "bad_request"),
    BadRequest: Answer(400, "bad_request"),
    Unauthorized: Answer(401, "unauthorized"),
    Forbidden: Answer(403, "forbidden"),
    NotFound: Answer(404, "not_found"),
    Conflict: Answer(409, "conflict"),
    PreconditionFailed: Answer(412, "precondition_failed"),
    PayloadTooLarge: Answer(413, "payload_too_large"),
    UnsupportedMediaType: Answer(415, "unsupported_media_type"),
    Unprocessable: Answer(422, "validation_failed"),
    TooManyRequests: Answer(429, "rate_limited"),
    ServiceUnavailable: Answer(503, "unavailable"),
    # errors of one domain
    BodyTooLarge: Answer(413, "payload_too_large"),
    BodyIncomplete: Answer(400, "bad_request"),
    BodyInterrupted: Answer(400, "bad_request"),
    IdempotencyKeyReused: Answer(422, "idempotency_key_reused"),
    IdempotencyKeyInUse: Answer(409, "idempotency_key_in_use"),
    NulCharacter: Answer(422, "validation_failed"),
    NestedTooDeep: Answer(400, "bad_request"),
    # errors of lower layers
    TransitionError: Answer(409, "conflict"),
    ObjectNotFound: Answer(404, "not_found", "not found"),
    StorageError: Answer(503, "storage_unavailable", "object storage is unavailable; retry later"),
    # the framework's, and the catch-all
    ValidationException: Answer(422, "validation_failed"),
    Exception: Answer(500, "internal", "internal server error"),
}

HTTP_CODES = {
    400: "bad_request",
    401: "unauthorized",
    403: "forbidden",
    404: "not_found",
    405: "method_not_allowed",
    409: "conflict",
    413: "payload_too_large",
    415: "unsupported_media_type",
    422: "validation_failed",
    429: "rate_limited",
}
"""The code of a framework `HTTPException` by its status; "error" for any other status."""


def answer_for(exc: BaseException) -> Answer:
    """The table's entry for the first class of `exc`'s MRO that has one."""
    return _answer_of(type(exc))


def _answer_of(error: type[BaseException]) -> Answer:
    for cls in error.__mro__:
        if cls in ERROR_TABLE:
            return ERROR_TABLE[cls]
    return ERROR_TABLE[Exception]


class ErrorDetail(msgspec.Struct):
    code: str
    message: str


class ErrorOut(msgspec.Struct):
    """The body of every error answer: `{"error": {"code": ..., "message": ...}}`."""

    error: ErrorDetail


ANY_ROUTE: tuple[type[Exception], ...] = (BadRequest, Unprocessable)
"""What any route may answer: a malformed request (a body that is not JSON, a bad header or
cursor: 400) and a value that breaks a rule (a NUL in the query string, a field out of its
bounds: 422)."""


WRITE: tuple[type[Exception], ...] = (
    TooManyRequests,
    PayloadTooLarge,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
)
"""What a mutating route may answer before its handler runs (api/middleware): the rate limit,
a body over the app's size limit, an `Idempotency-Key` in use or reused."""


def documented(*raised: type[Exception], empty: int | None = None) -> dict[int, ResponseSpec]:
    """A route's documented answers (OpenAPI 3.1 §4.8.16, Responses Object) for the errors it
    can raise, each at the status `ERROR_TABLE` gives it, listing the codes it may carry;
    `empty`: the route's success status, answered with no body (a 204, a HEAD)."""
    codes: dict[int, list[str]] = {}
    for error in (*ANY_ROUTE, *raised):
        status, code, _message = _answer_of(error)
        if code not in codes.setdefault(status, []):
            codes[status].append(code)
    specs = {
        status: ResponseSpec(
            data_container=ErrorOut,
            generate_examples=False,
            description="error.code: " + ", ".join(sorted(names)),
        )
        for status, names in sorted(codes.items())
    }
    if empty is not None:
        specs[empty] = ResponseSpec(data_container=None, description="No body")
    return specs


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(content=error_body(code, message), status_code=status, headers=headers)


def _answer(_: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    status, code, message = answer_for(exc)
    headers = getattr(exc, "headers", None) or {}
    return error_response(status, code, message or str(exc), headers)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    detail = str(exc.detail or "invalid request")
    extra = exc.extra if isinstance(exc.extra, list) else []
    if "malformed" in detail.lower() or "decode" in detail.lower():
        status, code, _message = ERROR_TABLE[BadRequest]
        return error_response(status, code, "the request body is not valid JSON")
    if extra:
        parts = [f"{e.get('key', '')}: {e.get('message', '')}".strip(": ") for e in extra]
        detail = "; ".join(p for p in parts if p) or detail
    status, code, _message = ERROR_TABLE[ValidationException]
    return error_response(status, code, detail)


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = HTTP_CODES.get(status, "error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if isinstance(exc, NotFoundException):
        message = "not found"
    return error_response(status, code, message, dict(exc.headers or {}))


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request.logger.exception("unhandled error on %s %s", request.method, request.url.path)
    status, code, message = ERROR_TABLE[Exception]
    return error_response(status, code, message or code)


EXCEPTION_HANDLERS: dict[Any, Any] = {
    **{cls: _answer for cls in ERROR_TABLE},
    ValidationException: _validation,
    HTTPException: _http,
    Exception: _unexpected,
}
"""What the app registers: litestar picks the handler of the first class of the MRO here."""

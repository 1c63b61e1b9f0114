"""The one place where errors become HTTP responses.

Every error the API returns has the shape `{"error": {"code": ..., "message": ...}}`. Handlers
raise `ApiError` subclasses (or domain errors listed in `DOMAIN_ERRORS`); framework errors
(unknown route, wrong method, malformed body) are reshaped here too.
"""

from __future__ import annotations

from typing import Any, ClassVar

from litestar import Request, Response
from litestar.exceptions import HTTPException, NotFoundException, ValidationException
from litestar.status_codes import HTTP_500_INTERNAL_SERVER_ERROR

from cdn.storage import StorageError


class ApiError(Exception):
    status: ClassVar[int] = 400
    code: ClassVar[str] = "bad_request"

    def __init__(self, message: str, *, headers: dict[str, str] | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.headers = headers or {}


class BadRequest(ApiError):
    status, code = 400, "bad_request"


class Unauthorized(ApiError):
    status, code = 401, "unauthorized"


class Forbidden(ApiError):
    status, code = 403, "forbidden"


class NotFound(ApiError):
    status, code = 404, "not_found"


class Conflict(ApiError):
    status, code = 409, "conflict"


class Gone(ApiError):
    status, code = 410, "gone"


class PreconditionFailed(ApiError):
    status, code = 412, "precondition_failed"


class PayloadTooLarge(ApiError):
    status, code = 413, "payload_too_large"


class UnsupportedMediaType(ApiError):
    status, code = 415, "unsupported_media_type"


class Unprocessable(ApiError):
    status, code = 422, "validation_failed"


class TooManyRequests(ApiError):
    status, code = 429, "rate_limited"


class ServiceUnavailable(ApiError):
    status, code = 503, "unavailable"


class StorageUnavailable(ApiError):
    """The object store failed; the same answer as an unhandled `StorageError`."""

    status, code = 503, "storage_unavailable"

    def __init__(self, *, headers: dict[str, str] | None = None) -> None:
        super().__init__("object storage is unavailable; retry later", headers=headers)


def error_body(code: str, message: str) -> dict[str, Any]:
    return {"error": {"code": code, "message": message}}


def error_response(
    status: int, code: str, message: str, headers: dict[str, str] | None = None
) -> Response[Any]:
    return Response(content=error_body(code, message), status_code=status, headers=headers)


def _api_error(_: Request[Any, Any, Any], exc: ApiError) -> Response[Any]:
    return error_response(exc.status, exc.code, exc.message, exc.headers)


def _validation(_: Request[Any, Any, Any], exc: ValidationException) -> Response[Any]:
    detail = str(exc.detail or "invalid request")
    extra = exc.extra if isinstance(exc.extra, list) else []
    if "malformed" in detail.lower() or "decode" in detail.lower():
        return error_response(400, "bad_request", "the request body is not valid JSON")
    if extra:
        parts = [f"{e.get('key', '')}: {e.get('message', '')}".strip(": ") for e in extra]
        detail = "; ".join(p for p in parts if p) or detail
    return error_response(422, "validation_failed", detail)


_HTTP_CODES = {
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


def _http(_: Request[Any, Any, Any], exc: HTTPException) -> Response[Any]:
    status = exc.status_code
    code = _HTTP_CODES.get(status, "error")
    message = str(exc.detail) if exc.detail else code.replace("_", " ")
    if isinstance(exc, NotFoundException):
        message = "not found"
    return error_response(status, code, message, dict(exc.headers or {}))


def _storage(request: Request[Any, Any, Any], exc: StorageError) -> Response[Any]:
    return _api_error(request, StorageUnavailable())


def _unexpected(request: Request[Any, Any, Any], exc: Exception) -> Response[Any]:
    request.logger.exception("unhandled error on %s %s", request.method, request.url.path)
    return error_response(HTTP_500_INTERNAL_SERVER_ERROR, "internal", "internal server error")


EXCEPTION_HANDLERS: dict[Any, Any] = {
    ApiError: _api_error,
    ValidationException: _validation,
    HTTPException: _http,
    StorageError: _storage,
    Exception: _unexpected,
}

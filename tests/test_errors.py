"""The one error table (api/core/errors.py): every domain error and every lower layer's error
that reaches a route is answered from `ERROR_TABLE`, through the real framework, and the
services that raise them know nothing of HTTP."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest
from litestar import Litestar, get
from litestar.testing import TestClient

from api.core import domain_errors, errors
from api.core.domain_errors import (
    BodyIncomplete,
    BodyInterrupted,
    BodyTooLarge,
    Conflict,
    DomainError,
    IdempotencyKeyInUse,
    IdempotencyKeyReused,
    NotFound,
    PreconditionFailed,
    ServiceUnavailable,
    TooManyRequests,
    Unprocessable,
    with_headers,
)
from api.core.errors import ERROR_TABLE, EXCEPTION_HANDLERS, answer_for
from api.core.lifecycle import TransitionError
from cdn.storage import ObjectNotFound, StorageError
from tests.test_layout import external_imports

ROOT = Path(__file__).resolve().parents[1]

CASES: list[tuple[Exception, int, str, str]] = [
    (NotFound("no such video"), 404, "not_found", "no such video"),
    (Conflict("already done"), 409, "conflict", "already done"),
    (Unprocessable("reason: needed"), 422, "validation_failed", "reason: needed"),
    (PreconditionFailed("tus 1.0.0 only"), 412, "precondition_failed", "tus 1.0.0 only"),
    (ServiceUnavailable("queue down"), 503, "unavailable", "queue down"),
    (
        BodyTooLarge(10),
        413,
        "payload_too_large",
        "the body is longer than declared (more than 10 bytes); nothing was kept",
    ),
    (
        BodyIncomplete(3, 10),
        400,
        "bad_request",
        "upload incomplete: received 3 of 10 bytes; nothing was kept",
    ),
    (
        BodyInterrupted("client disconnected prematurely"),
        400,
        "bad_request",
        "the upload was interrupted (client disconnected prematurely); nothing was kept",
    ),
    (IdempotencyKeyReused("used"), 422, "idempotency_key_reused", "used"),
    (IdempotencyKeyInUse("busy"), 409, "idempotency_key_in_use", "busy"),
    (
        TransitionError("v_1", "published", "uploaded"),
        409,
        "conflict",
        "video v_1 is published; it cannot become uploaded",
    ),
    (ObjectNotFound("uploads/v_1/000000000000"), 404, "not_found", "not found"),
    (
        StorageError("S3 http://minio:9000 unavailable: refused"),
        503,
        "storage_unavailable",
        "object storage is unavailable; retry later",
    ),
    (RuntimeError("a bug"), 500, "internal", "internal server error"),
]


def _app_raising(exc: Exception) -> Litestar:
    @get("/boom", sync_to_thread=False)
    def boom() -> None:
        raise exc

    return Litestar(route_handlers=[boom], exception_handlers=EXCEPTION_HANDLERS)


@pytest.mark.parametrize(("exc", "status", "code", "message"), CASES, ids=lambda c: repr(c))
def test_each_error_is_answered_from_the_table(
    exc: Exception, status: int, code: str, message: str
) -> None:
    with TestClient(app=_app_raising(exc)) as client:
        response = client.get("/boom")
    assert response.status_code == status
    assert response.json() == {"error": {"code": code, "message": message}}


def test_headers_ride_on_any_error() -> None:
    limited = TooManyRequests("slow down", headers={"Retry-After": "3"})
    storage = with_headers(StorageError("down"), {"Tus-Resumable": "1.0.0"})
    for exc, header, value in (
        (limited, "Retry-After", "3"),
        (storage, "Tus-Resumable", "1.0.0"),
        (with_headers(limited, {"Retry-After": "9", "X-More": "1"}), "Retry-After", "3"),
    ):
        with TestClient(app=_app_raising(exc)) as client:
            response = client.get("/boom")
        assert response.headers[header] == value


def test_every_domain_error_has_its_own_entry() -> None:
    classes = [
        cls
        for _, cls in inspect.getmembers(domain_errors, inspect.isclass)
        if issubclass(cls, DomainError)
    ]
    assert len(classes) > 10
    assert [cls for cls in classes if cls not in ERROR_TABLE] == []


def test_the_most_specific_entry_wins() -> None:
    assert answer_for(BodyTooLarge(1)).code == "payload_too_large"
    assert answer_for(IdempotencyKeyInUse("x")).code == "idempotency_key_in_use"
    assert answer_for(ObjectNotFound("k")).status == 404
    assert answer_for(StorageError("k")).status == 503

    class SomeDomainsOwn(NotFound):
        pass

    assert answer_for(SomeDomainsOwn("x")).code == "not_found"


def test_domain_errors_know_nothing_of_http() -> None:
    imported = external_imports(ROOT / "api/core/domain_errors.py")
    assert {name.split(".")[0] for name in imported} <= {"__future__", "collections", "typing"}
    assert not any(hasattr(cls, "status") for cls in ERROR_TABLE if issubclass(cls, DomainError))


def test_no_dead_error_classes() -> None:
    assert not hasattr(domain_errors, "Gone")
    assert not hasattr(errors, "Gone")

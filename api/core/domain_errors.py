"""The errors services raise: what went wrong in the domain's terms, and nothing about HTTP.

Services (api/<domain> modules other than controllers, api/core/paging...) raise these and
import them from here; `api/core/errors.py` alone knows the status and code each one is
answered with (its `ERROR_TABLE`), and re-exports them, so that HTTP-side code (controllers,
middleware) has a single import. Nothing here imports the web framework.

The tree (dramatiq's `errors.py`, PyAV's error classes): a few families every domain shares
(`NotFound`, `Conflict`, ...), and errors of one domain that belong to a family
(`BodyTooLarge` is a `PayloadTooLarge`), so a caller may catch the family. Errors of layers
that know nothing of this module (the video state machine's `TransitionError`, the object
store's `StorageError`) are answered through the same table, not translated where they are
caught.

An error may carry headers for its answer (`headers`): a rate limit's `Retry-After`, the CORS
headers of media, tus' `Tus-Resumable`. `with_headers` adds some to any error on its way out,
a lower layer's included.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, TypeVar, cast

E = TypeVar("E", bound=BaseException)


class DomainError(Exception):
    """The root of the tree: a message meant for the client, and headers for its answer."""

    def __init__(self, message: str, *, headers: Mapping[str, str] | None = None) -> None:
        super().__init__(message)
        self.headers: dict[str, str] = dict(headers or {})


def with_headers(exc: E, headers: Mapping[str, str]) -> E:
    """`exc`, its answer carrying `headers` too (its own headers win a clash).

    Works on any error: a `StorageError` raised on a tus route still needs `Tus-Resumable`,
    and its class is the object store's, which has no `headers` of its own.
    """
    own = getattr(exc, "headers", None) or {}
    cast(Any, exc).headers = {**headers, **own}
    return exc


# ------------------------------------------------------------------------- the families


class BadRequest(DomainError):
    """The request itself is malformed (a header, a cursor, a body that ended early)."""


class Unauthorized(DomainError):
    """No caller, or a credential that is not valid (any more)."""


class Forbidden(DomainError):
    """The caller is known but may not do this."""


class NotFound(DomainError):
    """No such thing, or not one the caller may know of."""


class Conflict(DomainError):
    """The thing is not in a state that allows this (now): already done, or done meanwhile."""


class PreconditionFailed(DomainError):
    """A condition the request set does not hold (tus: another protocol version)."""


class PayloadTooLarge(DomainError):
    """More bytes than allowed or declared."""


class UnsupportedMediaType(DomainError):
    """A media type that is not accepted here."""


class Unprocessable(DomainError):
    """Well-formed, but a value breaks a rule (an empty file, a rejection with no reason)."""


class TooManyRequests(DomainError):
    """The caller spent its budget; `Retry-After` says when to come back."""


class ServiceUnavailable(DomainError):
    """A service we depend on (the job queue) failed; retrying later may work."""


# ------------------------------------------------------------- errors of one domain


class BodyTooLarge(PayloadTooLarge):
    """An upload body went past the size declared for it; its write was aborted."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            f"the body is longer than declared (more than {limit} bytes); nothing was kept"
        )
        self.limit = limit


class BodyIncomplete(BadRequest):
    """An upload body ended before the size declared for it; its write was aborted."""

    def __init__(self, received: int, expected: int) -> None:
        super().__init__(
            f"upload incomplete: received {received} of {expected} bytes; nothing was kept"
        )
        self.received, self.expected = received, expected


class BodyInterrupted(BadRequest):
    """The client went away mid-body, or the upload lease was lost; the write was aborted."""

    def __init__(self, why: str) -> None:
        super().__init__(f"the upload was interrupted ({why}); nothing was kept")
        self.why = why


class IdempotencyKeyReused(Unprocessable):
    """An `Idempotency-Key` sent again with another request (draft-ietf-httpapi-idempotency-
    key-header-07 §2.7)."""


class IdempotencyKeyInUse(Conflict):
    """The first request with this `Idempotency-Key` is still running (§2.7)."""


class NulCharacter(Unprocessable):
    """Text from the client holds a NUL character (U+0000), which no field takes: PostgreSQL
    cannot store it in text (issue 16, item 1; `api/core/nul.py`)."""

    def __init__(self, where: str) -> None:
        super().__init__(f"{where} holds a NUL character (U+0000), which no field accepts")


class NestedTooDeep(BadRequest):
    """A JSON body nested deeper than the decoder goes (issue 16, item 1)."""

    def __init__(self) -> None:
        super().__init__("the request body is not JSON we accept: it is nested too deeply")

"""The tus routes' headers in the OpenAPI document (issue 16, item 6: the document is the contract).

The tus handlers read their headers themselves (api/uploads/tus.py parses them, so a missing
`Tus-Resumable` is 412 and a bad `Upload-Length` is our 400 body, in the order the protocol
asks), so Litestar sees no header parameters to document. Each tus route names an
`Operation` subclass from here that adds the request headers it reads (OpenAPI 3.1 §4.8.12,
Parameter Object, `in: header`) and the headers of its success answer (§4.8.17, Response
Object `headers`). Header names and meanings are tus 1.0.0's (core protocol and the
`creation` extension).
"""

from __future__ import annotations

from dataclasses import dataclass

from litestar.openapi.spec import (
    OpenAPIFormat,
    OpenAPIHeader,
    OpenAPIMediaType,
    OpenAPIResponse,
    OpenAPIType,
    Operation,
    Parameter,
    RequestBody,
    Schema,
)

from api.uploads import tus

_DIGITS = Schema(type=OpenAPIType.STRING, pattern=r"^[0-9]+$")

_REQUEST: dict[str, tuple[Schema, str]] = {
    "Tus-Resumable": (
        Schema(type=OpenAPIType.STRING, enum=[tus.TUS_VERSION]),
        f"The protocol version (core §Tus-Resumable); anything but {tus.TUS_VERSION} is 412.",
    ),
    "Upload-Length": (
        _DIGITS,
        "The upload's size in bytes (creation §Upload-Length); deferred lengths are not offered.",
    ),
    "Upload-Metadata": (
        Schema(type=OpenAPIType.STRING, max_length=tus.MAX_METADATA_CHARS),
        "Comma-separated `key base64value` pairs (creation §Upload-Metadata); `filetype` "
        "gives the declared media type, `filename` the name.",
    ),
    "Upload-Offset": (
        _DIGITS,
        "Where this PATCH's bytes start (core §Upload-Offset); 409 unless it is the server's.",
    ),
}

_RESPONSE: dict[str, str] = {
    "Tus-Resumable": "The protocol version the server speaks (core §Tus-Resumable).",
    "Location": "The upload's absolute URL (creation §POST).",
    "Upload-Offset": "How many bytes the server holds (core §Upload-Offset).",
    "Upload-Length": "The upload's declared size (creation §Upload-Length).",
    "Upload-Metadata": "The metadata given at creation, as sent (creation §Upload-Metadata).",
}


_CHUNK = RequestBody(
    content={
        tus.OFFSET_CONTENT_TYPE: OpenAPIMediaType(
            schema=Schema(type=OpenAPIType.STRING, format=OpenAPIFormat.BINARY)
        )
    },
    required=True,
    description="The bytes to append at `Upload-Offset` (core §PATCH).",
)


def _parameter(name: str, required: bool) -> Parameter:
    schema, description = _REQUEST[name]
    return Parameter(
        name=name, param_in="header", schema=schema, required=required, description=description
    )


def tus_operation(
    status: int,
    required: tuple[str, ...] = (),
    optional: tuple[str, ...] = (),
    answers: tuple[str, ...] = (),
    chunk: bool = False,
) -> type[Operation]:
    """An `Operation` class for a tus route: `Tus-Resumable` and the `required`/`optional`
    request headers as header parameters; `answers` as the headers of the `status` answer;
    `chunk`: the body is upload bytes (core §PATCH, `application/offset+octet-stream`)."""
    parameters = [
        _parameter("Tus-Resumable", True),
        *(_parameter(name, True) for name in required),
        *(_parameter(name, False) for name in optional),
    ]
    headers = {
        name: OpenAPIHeader(schema=Schema(type=OpenAPIType.STRING), description=_RESPONSE[name])
        for name in ("Tus-Resumable", *answers)
    }

    @dataclass
    class TusOperation(Operation):
        def __post_init__(self) -> None:
            self.parameters = [*(self.parameters or []), *parameters]
            if chunk:
                self.request_body = _CHUNK
            answer = (self.responses or {}).get(str(status))
            if isinstance(answer, OpenAPIResponse):
                answer.headers = {**(answer.headers or {}), **headers}

    return TusOperation

"""What the upload routes take and answer (issue 3, "Upload"): the bodies of
`POST /v1/videos/upload-url` and `POST /v1/videos/{id}/publish`, with the limits the API
enforces in the OpenAPI document (issue 16, item 6)."""

from __future__ import annotations

from typing import Annotated, Literal

import msgspec

MAX_CAPTION = 2200

Privacy = Literal["public", "unlisted", "private"]


class PublishIn(msgspec.Struct):
    caption: Annotated[str, msgspec.Meta(max_length=MAX_CAPTION)] = ""
    privacy: Privacy = "public"


class PublishOut(msgspec.Struct):
    video_id: str
    status: str


class UploadUrlIn(msgspec.Struct):
    file_size_bytes: Annotated[int, msgspec.Meta(ge=1)]
    content_type: Annotated[str, msgspec.Meta(min_length=1, max_length=255)]


class UploadUrlOut(msgspec.Struct):
    video_id: str
    upload_url: str
    method: str
    headers: dict[str, str]
    expires_at: int


class UploadedOut(msgspec.Struct):
    video_id: str
    status: str
    size: int

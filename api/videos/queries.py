"""The video read every representation starts from: the video joined with its author."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Select, select

from api.core.tables import users, videos


def video_query() -> Select[Any]:
    """The columns `video_out` needs: the video joined with its author."""
    return select(
        videos,
        users.c.handle.label("author_handle"),
        users.c.display_name.label("author_display_name"),
    ).select_from(videos.join(users, users.c.id == videos.c.owner_id))

"""Which videos the caller may act on, and the counter moves the social writes share.

Checked inside the caller's own transaction (not through `api.videos.service.readable_video`,
which reads the video and its author on a connection of its own), so the check and the write
see the same rows. The rule itself is `api.core.visibility.visible_to`. A video the caller may
not see answers 404 (not 403), so private videos cannot be probed.
"""

from __future__ import annotations

from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.ext.asyncio import AsyncConnection

from api.core.domain_errors import NotFound
from api.core.tables import videos
from api.core.visibility import visible_to


async def visible_video(conn: AsyncConnection, video_id: str, viewer_id: str | None) -> None:
    """404 unless the viewer may see the video."""
    query = select(videos.c.owner_id, videos.c.status, videos.c.privacy).where(
        videos.c.id == video_id
    )
    row = (await conn.execute(query)).first()
    if row is None or not visible_to(row, viewer_id):
        raise NotFound("no such video")


async def visible_ids(conn: AsyncConnection, video_ids: set[str], viewer_id: str) -> set[str]:
    """Those of `video_ids` the viewer may see."""
    if not video_ids:
        return set()
    query = select(videos.c.id, videos.c.owner_id, videos.c.status, videos.c.privacy).where(
        videos.c.id.in_(sorted(video_ids))
    )
    return {row.id for row in (await conn.execute(query)).all() if visible_to(row, viewer_id)}


async def bump(conn: AsyncConnection, table: Table, row_id: str, column: str, delta: int) -> None:
    """Move one counter of one row by `delta`, in SQL (no read-modify-write race)."""
    col = table.c[column]
    await conn.execute(update(table).where(table.c.id == row_id).values({column: col + delta}))


async def scalar_int(conn: AsyncConnection, query: Any) -> int:
    """The query's single value as an int (0 when there is no row)."""
    return int((await conn.execute(query)).scalar() or 0)

"""Who may see a video: the one rule every route, feed, origin and job applies.

- Its record (`visible_to`): the owner always, until it is deleted; anyone else once it is
  published and public or unlisted.
- Feeds and profile grids (`listed`): published and public only.
- The origin's media (`origin_access`): a published public, unlisted or private video's
  render (signed playback tokens guard unlisted and private, `SIGNED_PRIVACY`); a video in
  review only to moderators under a review token.
- Edges are pre-warmed (`is_warmed`) only with what anyone may fetch: published and public.
"""

from __future__ import annotations

from typing import Any, Literal

from sqlalchemy import ColumnElement, and_, or_

from api.core import lifecycle
from api.core.tables import videos

READABLE_PRIVACY = frozenset({"public", "unlisted"})
"""Privacy levels whose published videos anyone may open by id."""
LISTED_PRIVACY = frozenset({"public"})
"""Privacy levels whose published videos appear in feeds, grids and warmed edges."""
SERVED_PRIVACY = frozenset({"public", "unlisted", "private"})
"""Privacy levels whose published media the origin serves (given a valid token)."""
SIGNED_PRIVACY = frozenset({"private", "unlisted"})
"""Privacy levels whose media URLs carry a playback token (issue 4, "Signed playback")."""

OriginAccess = Literal["serve", "review"] | None


def visible_to(row: Any, viewer_id: str | None) -> bool:
    """Whether `viewer_id` (None: anonymous) may read the video (a row with `status`,
    `privacy` and `owner_id`)."""
    if row.status == lifecycle.DELETED:
        return False
    if viewer_id is not None and row.owner_id == viewer_id:
        return True
    return bool(row.status == lifecycle.PUBLISHED and row.privacy in READABLE_PRIVACY)


def readable_by_others() -> ColumnElement[bool]:
    """SQL for the rows anyone may read: published, public or unlisted."""
    # Plain comparisons: an IN list is re-expanded on every execution.
    privacy = or_(*(videos.c.privacy == level for level in sorted(READABLE_PRIVACY)))
    return and_(videos.c.status == lifecycle.PUBLISHED, privacy)


def listed() -> ColumnElement[bool]:
    """The one condition for a video to appear in any feed or grid: published and public."""
    return and_(videos.c.status == lifecycle.PUBLISHED, videos.c.privacy == "public")


def is_warmed(status: str, privacy: str) -> bool:
    """Whether edges may be pre-warmed with the video (anyone may fetch it)."""
    return status == lifecycle.PUBLISHED and privacy in LISTED_PRIVACY


def origin_access(status: str, privacy: str, render_id: str | None) -> OriginAccess:
    """What the origin may do with a video's media: serve it (tokens checked for the signed
    privacy levels), serve it to moderators under a review token, or nothing (None)."""
    if status == lifecycle.PUBLISHED and privacy in SERVED_PRIVACY:
        return "serve"
    if status == lifecycle.IN_REVIEW and render_id:
        return "review"
    return None

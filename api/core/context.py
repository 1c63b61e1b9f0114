"""What every request handler needs, built once at start-up and passed in (never globals)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from sqlalchemy.ext.asyncio import AsyncEngine

from api.core.cache import Cache
from api.core.settings import Settings
from api.core.ttlcache import TTLCache
from cdn.storage import Storage

if TYPE_CHECKING:
    from api.accounts.tokens import User
    from api.feed.following import CreatorVideos
    from api.videos.schemas import VideoOut


class JobQueue(Protocol):
    """Where the API hands work to the workers (Dramatiq in both modes)."""

    def enqueue_transcode(self, video_id: str, lane: str) -> None: ...
    def enqueue_cleanup(self, video_id: str) -> None: ...
    def enqueue_purge(self, video_id: str) -> None: ...
    def warm(self, video_id: str) -> int: ...
    def check(self) -> None: ...


@dataclass
class LocalCaches:
    """This process's short-lived copies of hot rows (TTLs in `Settings`, see there what
    another process may still serve meanwhile)."""

    # token digest → (its user, when the token expires in ms)
    tokens: TTLCache[str, tuple[User, int]]
    # video id → its public view while published and public, None while it is not
    videos: TTLCache[str, VideoOut | None]
    # user id → the ids of the creators they follow
    followees: TTLCache[str, tuple[str, ...]]
    # creator id → their newest published public videos
    creator_videos: TTLCache[str, CreatorVideos]
    # viewer id → (the version it was read at, the videos they watched or marked)
    seen: TTLCache[str, tuple[bytes, frozenset[str]]]

    @classmethod
    def from_settings(cls, settings: Settings) -> LocalCaches:
        return cls(
            tokens=TTLCache(settings.token_cache_seconds, max_items=100_000),
            videos=TTLCache(settings.video_cache_seconds, max_items=50_000),
            followees=TTLCache(settings.followees_cache_seconds, max_items=50_000),
            creator_videos=TTLCache(settings.creator_videos_cache_seconds, max_items=20_000),
            # Checked against the shared version on every read; the TTL only bounds memory.
            seen=TTLCache(min(settings.seen_cache_seconds, 60), max_items=5_000),
        )


@dataclass
class AppContext:
    settings: Settings
    db: AsyncEngine
    storage: Storage
    cache: Cache
    jobs: JobQueue
    # `db` in autocommit: a read is one round trip (no BEGIN/ROLLBACK around it). For reads
    # only; anything that writes more than one statement takes `db.begin()`.
    reads: AsyncEngine
    local: LocalCaches
